-- Idle expiry and wake on open. The web app writes `opened_at` whenever the user opens the
-- project (the signed-in owner may write it, own rows only: RLS as for the other steering
-- columns). It is not a spec change: no generation bump, no 'queued' event. What a write of
-- `opened_at` by a requester (not the controller) means depends on the row:
--  * a settled running preview (status 'running', reason 'Ready' or 'Idle', nothing pending):
--    a wake request. status_reason becomes 'WakeRequested', the row is due at once and the
--    controller is told (NOTIFY 'update'); it starts the machine if Fly's autostop suspended or
--    stopped it (one Fly `start`), and sets the row's next due time to the new expiry.
--  * an expired preview (status 'stopped', reason 'Expired', still wanting to run): a deploy
--    request, exactly like writing status = 'pending' (a new generation, 'RedeployRequested';
--    the quota and the redeploy budget apply as to any deploy).
--  * any other row: the value is only stored; the pass that settles the row reads it.
-- Expiry itself is the controller's (PREVIEW_IDLE_TTL): a running preview's due time is set to
-- the later of `opened_at` and its last deploy (`requested_at`) plus the TTL when it settles,
-- so the due-time scheduler wakes it exactly then; the pass deletes the Fly app and writes
-- status 'stopped', reason 'Expired'. An expired row holds no quota slot (active_previews.sql
-- counts only rows that are deploying, running, failed or redeploying a machine), so the
-- user's oldest refused row is woken when a preview expires (the quota wake, below).

alter table public.fly_preview_apps add column if not exists opened_at timestamptz;

grant insert (opened_at) on public.fly_preview_apps to authenticated;
grant update (opened_at) on public.fly_preview_apps to authenticated;

-- BEFORE UPDATE OF opened_at, ahead of _10_update (which resets the backoff and the request
-- time when the generation changes) and _15_derived (which clears error_message of a row that
-- is now 'pending').
create or replace function public.fly_preview_apps_opened() returns trigger
  language plpgsql set search_path = ''
  as $$
begin
  if public.fly_preview_apps_by_controller()
     or new.opened_at is not distinct from old.opened_at
     or new.desired_state <> 'running'
     or new.generation <> old.generation then
    return new;
  end if;
  if old.status = 'stopped' and old.status_reason = 'Expired' then
    new.status := 'pending';
    new.generation := old.generation + 1;
    new.status_reason := 'RedeployRequested';
  elsif old.status = 'running' and old.observed_generation = old.generation
        and old.status_reason in ('Ready', 'Idle') then
    new.status_reason := 'WakeRequested';
    new.attempts := 0;
    new.next_attempt_at := pg_catalog.now();
    perform pg_catalog.pg_notify('fly_preview_apps',
      pg_catalog.json_build_object('op', 'update', 'id', new.id)::text);
  end if;
  return new;
end $$;

drop trigger if exists fly_preview_apps_06_opened on public.fly_preview_apps;
create trigger fly_preview_apps_06_opened before update of opened_at on public.fly_preview_apps
  for each row execute function public.fly_preview_apps_opened();
revoke execute on function public.fly_preview_apps_opened() from public, anon, authenticated;

-- A preview that expires gives its slot back (it had a machine: the slot was held): the user's
-- oldest refused row is woken, as when a teardown finishes (20261207000100_bounded_rows.sql).
drop trigger if exists fly_preview_apps_30_quota_wake_expired on public.fly_preview_apps;
create trigger fly_preview_apps_30_quota_wake_expired after update on public.fly_preview_apps
  for each row when (new.status = 'stopped' and new.status_reason = 'Expired'
                     and new.desired_state = 'running'
                     and old.status is distinct from 'stopped')
  execute function public.fly_preview_apps_quota_wake();

-- Previews that settled running before this migration wait for no time ('infinity'): they
-- get the expiry of the default TTL (7 days after their last deploy request); the controller
-- decides again with its configured PREVIEW_IDLE_TTL when they come due.
update public.fly_preview_apps
   set next_attempt_at = requested_at + interval '7 days'
 where status = 'running' and desired_state = 'running' and observed_generation = generation
   and next_attempt_at = 'infinity'::timestamptz;
