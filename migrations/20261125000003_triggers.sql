-- Triggers: updated_at, generation bumps, translation of status writes into requests, and
-- NOTIFY hints. The controller marks its own writes with the transaction-local setting
-- fly_preview.controller = 'on'; any other writer (web app, table editor) is a requester.

create or replace function public.fly_preview_apps_by_controller() returns boolean
  language sql stable set search_path = ''
  as $$ select coalesce(pg_catalog.current_setting('fly_preview.controller', true), '') = 'on' $$;

-- BEFORE INSERT: a new row from a requester starts as a fresh request.
create or replace function public.fly_preview_apps_on_insert() returns trigger
  language plpgsql set search_path = ''
  as $$
begin
  if public.fly_preview_apps_by_controller() then
    return new;
  end if;
  if new.status = 'stopped' then
    new.desired_state := 'stopped';
  elsif new.status is distinct from 'pending' then
    new.status := 'pending';
  end if;
  new.generation := 1;
  new.observed_generation := 0;
  new.attempts := 0;
  new.next_attempt_at := pg_catalog.now();
  new.lease_owner := null;
  new.lease_expires_at := null;
  new.requested_at := pg_catalog.now();
  new.last_transition_at := pg_catalog.now();
  new.status_reason := case when new.desired_state = 'stopped' then 'TeardownRequested' else 'DeployRequested' end;
  return new;
end $$;

-- BEFORE UPDATE OF status: a status write by anyone but the controller is a request. This
-- fires whenever `status` is in the SET list, even when the value is unchanged, so writing
-- 'pending' to a row that still shows 'pending' is still a (re)deploy request.
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
    new.status_reason := 'TeardownRequested';
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

-- BEFORE UPDATE: bump the generation on a spec change and reset the backoff.
create or replace function public.fly_preview_apps_on_update() returns trigger
  language plpgsql set search_path = ''
  as $$
begin
  if new.github_repo_url is distinct from old.github_repo_url
     or new.github_branch is distinct from old.github_branch
     or new.desired_state is distinct from old.desired_state then
    new.generation := greatest(new.generation, old.generation + 1);
    if not public.fly_preview_apps_by_controller() and new.status_reason is not distinct from old.status_reason then
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

create or replace function public.fly_preview_apps_touch() returns trigger
  language plpgsql set search_path = ''
  as $$
begin
  new.updated_at := pg_catalog.now();
  return new;
end $$;

-- AFTER: a small hint for the controller (it never trusts hints alone).
create or replace function public.fly_preview_apps_notify() returns trigger
  language plpgsql set search_path = ''
  as $$
begin
  if tg_op = 'DELETE' then
    perform pg_catalog.pg_notify('fly_preview_apps',
      pg_catalog.json_build_object('op', 'delete', 'id', old.id, 'app', old.fly_app_name)::text);
    return old;
  end if;
  if tg_op = 'INSERT' or new.generation <> old.generation then
    perform pg_catalog.pg_notify('fly_preview_apps',
      pg_catalog.json_build_object('op', pg_catalog.lower(tg_op), 'id', new.id)::text);
  end if;
  return new;
end $$;

drop trigger if exists fly_preview_apps_10_insert on public.fly_preview_apps;
create trigger fly_preview_apps_10_insert before insert on public.fly_preview_apps
  for each row execute function public.fly_preview_apps_on_insert();
drop trigger if exists fly_preview_apps_05_status_write on public.fly_preview_apps;
create trigger fly_preview_apps_05_status_write before update of status on public.fly_preview_apps
  for each row execute function public.fly_preview_apps_on_status_write();
drop trigger if exists fly_preview_apps_10_update on public.fly_preview_apps;
create trigger fly_preview_apps_10_update before update on public.fly_preview_apps
  for each row execute function public.fly_preview_apps_on_update();
drop trigger if exists fly_preview_apps_20_touch on public.fly_preview_apps;
create trigger fly_preview_apps_20_touch before update on public.fly_preview_apps
  for each row
  when ((pg_catalog.to_jsonb(old) - 'lease_owner' - 'lease_expires_at' - 'updated_at')
        is distinct from (pg_catalog.to_jsonb(new) - 'lease_owner' - 'lease_expires_at' - 'updated_at'))
  execute function public.fly_preview_apps_touch();
drop trigger if exists fly_preview_apps_90_notify on public.fly_preview_apps;
create trigger fly_preview_apps_90_notify after insert or update or delete on public.fly_preview_apps
  for each row execute function public.fly_preview_apps_notify();
