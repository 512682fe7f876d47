-- Per-user limits: the redeploy budget's bookkeeping (controller-owned columns, not granted to
-- `authenticated`), and a trigger that wakes the oldest quota-refused row of a user when one
-- of the user's previews stops wanting to run (desired_state -> 'stopped', or the row is
-- deleted): it deploys by itself when the user frees a slot.

alter table public.fly_preview_apps
  add column if not exists redeploys integer not null default 0,
  add column if not exists redeploy_window_start timestamptz,
  add column if not exists redeploy_generation bigint not null default 0;

-- The quota counts a user's rows; the refused rows are found oldest first.
create index if not exists fly_preview_apps_user_created_idx
  on public.fly_preview_apps (user_id, created_at, id);
-- Claims count each user's leased rows (the per-user cap on rows in flight).
create index if not exists fly_preview_apps_leased_idx
  on public.fly_preview_apps (user_id) where lease_owner is not null;

-- Serialises quota decisions per user with the controller (same advisory lock key), so a
-- slot freed while a row is being refused is never lost. Security definer: the requester
-- (a signed-in user) may not write controller columns; it touches only the same user's rows.
create or replace function public.fly_preview_apps_quota_wake() returns trigger
  language plpgsql security definer set search_path = ''
  as $$
declare
  woken uuid;
begin
  perform pg_catalog.pg_advisory_xact_lock(1718646126, pg_catalog.hashtext(old.user_id::text));
  update public.fly_preview_apps
     set next_attempt_at = pg_catalog.now()
   where id = (select r.id from public.fly_preview_apps r
                where r.user_id = old.user_id
                  and r.id <> old.id
                  and r.desired_state = 'running'
                  and r.status_reason = 'QuotaExceeded'
                  and r.next_attempt_at > pg_catalog.now()
                order by r.created_at, r.id
                limit 1)
  returning id into woken;
  if woken is not null then
    perform pg_catalog.pg_notify('fly_preview_apps',
      pg_catalog.json_build_object('op', 'update', 'id', woken)::text);
  end if;
  return null;
end $$;

drop trigger if exists fly_preview_apps_30_quota_wake_stop on public.fly_preview_apps;
create trigger fly_preview_apps_30_quota_wake_stop after update on public.fly_preview_apps
  for each row when (old.desired_state = 'running' and new.desired_state = 'stopped')
  execute function public.fly_preview_apps_quota_wake();
drop trigger if exists fly_preview_apps_30_quota_wake_delete on public.fly_preview_apps;
create trigger fly_preview_apps_30_quota_wake_delete after delete on public.fly_preview_apps
  for each row when (old.desired_state = 'running')
  execute function public.fly_preview_apps_quota_wake();

-- Like the table's other functions (20261127000100_supabase_seam.sql): nobody but the owner
-- calls it directly (a trigger needs no EXECUTE privilege when it fires).
revoke execute on function public.fly_preview_apps_quota_wake() from public, anon, authenticated;
