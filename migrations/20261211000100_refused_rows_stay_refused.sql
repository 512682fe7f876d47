-- A row the quota refused (status 'error', reason 'QuotaExceeded') stays refused through its
-- user's writes until the controller's next pass admits it or refuses it again. Before, the
-- web app's branch change (or a stop, or a stop undone) rewrote its reason to 'SpecChanged'
-- or 'TeardownRequested': the row then counted as holding a slot (src/store/sql/
-- active_previews.sql and the quota-wake triggers count every 'error' row not refused), and
-- its pass deployed it without taking one, beyond MAX_PREVIEWS_PER_USER (found by the bench's
-- steady churn; tests/it/quota_bound.rs). Writing status = 'pending' still turns it into a
-- 'pending' row that needs a slot, as before.

-- BEFORE UPDATE OF status: unchanged from 20261125000003_triggers.sql but for the stop of a
-- refused row, which keeps its reason.
create or replace function public.fly_preview_apps_on_status_write() returns trigger
  language plpgsql set search_path = ''
  as $$
begin
  if public.fly_preview_apps_by_controller() then
    return new;
  end if;
  if new.status = 'stopped' then
    -- "stop this preview": status stays truthful until the app is really gone.
    new.desired_state := 'stopped';
    new.status := old.status;
    new.status_reason := case when old.status_reason = 'QuotaExceeded' then 'QuotaExceeded'
                              else 'TeardownRequested' end;
  elsif new.status = 'pending' then
    -- "(re)deploy": a new generation even when nothing else changed.
    new.desired_state := 'running';
    new.generation := old.generation + 1;
    new.status_reason := 'RedeployRequested';
  else
    new.status := old.status; -- other statuses are the controller's to set
  end if;
  return new;
end $$;

-- BEFORE UPDATE (spec change): unchanged from 20261207000220_root_directory.sql but that a
-- refused row keeps its reason.
create or replace function public.fly_preview_apps_on_update() returns trigger
  language plpgsql set search_path = ''
  as $$
begin
  if new.github_repo_url is distinct from old.github_repo_url
     or new.github_branch is distinct from old.github_branch
     or new.root_directory is distinct from old.root_directory
     or new.desired_state is distinct from old.desired_state then
    new.generation := greatest(new.generation, old.generation + 1);
    if not public.fly_preview_apps_by_controller()
       and new.status_reason is not distinct from old.status_reason
       and old.status_reason is distinct from 'QuotaExceeded' then
      new.status_reason := case when new.desired_state = 'stopped' then 'TeardownRequested' else 'SpecChanged' end;
    end if;
  end if;
  if new.generation <> old.generation then
    new.attempts := 0;
    new.next_attempt_at := pg_catalog.now();
    new.requested_at := pg_catalog.now();
  end if;
  return new;
end $$;
