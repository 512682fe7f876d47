-- Bounded per-user cost, enforced by the database itself:
-- 1. fly_preview_controller.settings: the app-name prefix and the per-user row cap, one row,
--    in the controller's schema (PostgREST does not expose it; anon/authenticated cannot use
--    it), changed only by its owner (the service side): `update fly_preview_controller.settings
--    set max_rows_per_user = 200;`.
-- 2. BEFORE INSERT: fly_app_name is derived by the database (the seed's rule: prefix, '-', the
--    first 8 hex of md5(user_id || '-' || project_id)) whatever the writer sent; a name held by
--    another user's or project's row is refused with a clear error; a user's insert beyond the
--    row cap fails as a whole (nothing partial).
-- 3. CHECK bounds on the text a user writes (generous: the controller's own validation, with
--    its messages, stays tighter); rows stored before the bounds are kept (NOT VALID, then
--    validated only if every row fits).
-- 4. A slot is held while a machine may be alive (through a redeploy, until a teardown is
--    done); the quota wake looks for a refused row through a partial index, and only when a
--    slot was really freed (a bulk stop/delete of a user's own rows stays linear).
-- 5. The claim reads people's work through a partial index (src/store/sql/claim.sql): its
--    cost is bounded by its window, not by the number of due rows.

create table if not exists fly_preview_controller.settings (
  id integer primary key default 1 check (id = 1),
  -- the prefix of derived app names (the controller's APP_PREFIX must match)
  app_prefix text not null default 'roseram'
    constraint settings_app_prefix_check check (app_prefix ~ '^[a-z][a-z0-9-]{0,29}$'),
  -- most rows one user may have in public.fly_preview_apps; 0 = no cap
  max_rows_per_user integer not null default 100
    constraint settings_max_rows_per_user_check check (max_rows_per_user >= 0)
);
insert into fly_preview_controller.settings (id) values (1) on conflict (id) do nothing;
alter table fly_preview_controller.settings enable row level security;
revoke all on fly_preview_controller.settings from public, anon, authenticated, service_role;

-- BEFORE INSERT (after the request translation of _10_/_11_, before _15_derived, which builds
-- preview_url from the name). Security definer: reads the settings and counts the user's rows
-- whatever the writer may see; it only reads.
create or replace function public.fly_preview_apps_name() returns trigger
  language plpgsql security definer set search_path = ''
  as $$
declare
  s fly_preview_controller.settings;
  n integer;
begin
  select * into s from fly_preview_controller.settings where id = 1;
  new.fly_app_name := coalesce(s.app_prefix, 'roseram') || '-'
    || pg_catalog.left(pg_catalog.md5(new.user_id::text || '-' || new.project_id::text), 8);
  if exists (select 1 from public.fly_preview_apps r
              where r.fly_app_name = new.fly_app_name
                and (r.user_id <> new.user_id or r.project_id::text <> new.project_id::text)) then
    raise exception 'fly_preview_apps: the preview name % is already taken by another project', new.fly_app_name
      using errcode = '23505',
            hint = 'Derived names are unique per user and project; use another project id.';
  end if;
  if coalesce(s.max_rows_per_user, 0) > 0 then
    -- one insert of a user at a time decides against the cap (same user: serialised)
    perform pg_catalog.pg_advisory_xact_lock(1718646128, pg_catalog.hashtext(new.user_id::text));
    select count(*) into n
      from (select 1 from public.fly_preview_apps r
             where r.user_id = new.user_id limit s.max_rows_per_user) mine;
    if n >= s.max_rows_per_user then
      raise exception 'fly_preview_apps: this account already has % previews, the most it may have; delete one before creating another', s.max_rows_per_user
        using errcode = 'P0001',
              hint = 'The limit is fly_preview_controller.settings.max_rows_per_user.';
    end if;
  end if;
  return new;
end $$;

drop trigger if exists fly_preview_apps_12_name on public.fly_preview_apps;
create trigger fly_preview_apps_12_name before insert on public.fly_preview_apps
  for each row execute function public.fly_preview_apps_name();
revoke execute on function public.fly_preview_apps_name() from public, anon, authenticated;

-- Bounds on what a user writes (bytes). preview_url and error_message a requester writes are
-- replaced (_15_derived), revision has its own check (20261127000400).
alter table public.fly_preview_apps drop constraint if exists fly_preview_apps_text_bounds_check;
alter table public.fly_preview_apps add constraint fly_preview_apps_text_bounds_check check (
  pg_catalog.octet_length(project_id::text) between 1 and 256
  and pg_catalog.octet_length(fly_app_name) <= 63
  and coalesce(pg_catalog.octet_length(github_repo_url), 0) <= 4096
  and coalesce(pg_catalog.octet_length(github_branch), 0) <= 1024
) not valid;
do $$
begin
  alter table public.fly_preview_apps validate constraint fly_preview_apps_text_bounds_check;
exception when check_violation then
  raise warning 'fly_preview_apps: some existing rows exceed the text bounds; they are kept, new writes are bounded';
end $$;

-- Quota-refused rows of a user, oldest first: the wake's lookup is one index probe.
create index if not exists fly_preview_apps_refused_idx
  on public.fly_preview_apps (user_id, created_at, id)
  where status_reason = 'QuotaExceeded' and desired_state = 'running';

-- People's work (new rows, spec changes, status requests, deploys in progress) in due order:
-- the claim's first window.
create index if not exists fly_preview_apps_wanted_due_idx
  on public.fly_preview_apps (next_attempt_at)
  where attempts = 0 and (observed_generation < generation or status = 'initializing');

-- The wake itself is unchanged but for the lookup (reads fly_preview_apps_refused_idx).
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
                  and r.status_reason = 'QuotaExceeded'
                  and r.desired_state = 'running'
                  and r.id <> old.id
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

-- A slot is held while a machine may be alive for the user (src/store/sql/active_previews.sql):
-- by a row that wants to run, is not refused, and is deploying, running, failed or redeploying
-- a machine; by a row being torn down that still has its machine; by the tombstone of a deleted
-- row that had one, until the teardown is done. A slot is freed, and the user's oldest refused
-- row woken, only when that ends:
--  * the controller records a finished teardown (the row wanting to stop loses its machine);
--  * a row that held a slot but had no machine yet stops wanting to run, or is deleted;
--  * the tombstone of a row that had a machine is done (the app is gone).
-- Rows that held no slot wake nothing, so a bulk stop/delete of a user's rows stays linear.
alter table fly_preview_controller.tombstones
  add column if not exists held_slot boolean not null default false;
create index if not exists tombstones_held_slot_idx
  on fly_preview_controller.tombstones (user_id) where held_slot;

create or replace function public.fly_preview_apps_tombstone() returns trigger
  language plpgsql security definer set search_path = ''
  as $$
begin
  insert into fly_preview_controller.tombstones as t (id, user_id, fly_app_name, held_slot)
  values (old.id, old.user_id, old.fly_app_name, old.fly_machine_id is not null)
  on conflict (id) do update
    set user_id = excluded.user_id,
        fly_app_name = excluded.fly_app_name,
        held_slot = excluded.held_slot,
        deleted_at = pg_catalog.now(),
        attempts = 0,
        next_attempt_at = pg_catalog.now(),
        last_error = null;
  return null;
end $$;

drop trigger if exists fly_preview_apps_30_quota_wake_stop on public.fly_preview_apps;
create trigger fly_preview_apps_30_quota_wake_stop after update on public.fly_preview_apps
  for each row when (new.desired_state = 'stopped' and new.fly_machine_id is null
                     and (old.fly_machine_id is not null
                          or (old.desired_state = 'running'
                              and old.status_reason is distinct from 'QuotaExceeded'
                              and old.status in ('initializing', 'running', 'error'))))
  execute function public.fly_preview_apps_quota_wake();
drop trigger if exists fly_preview_apps_30_quota_wake_delete on public.fly_preview_apps;
create trigger fly_preview_apps_30_quota_wake_delete after delete on public.fly_preview_apps
  for each row when (old.desired_state = 'running' and old.fly_machine_id is null
                     and old.status_reason is distinct from 'QuotaExceeded'
                     and old.status in ('initializing', 'running', 'error'))
  execute function public.fly_preview_apps_quota_wake();
drop trigger if exists tombstones_30_quota_wake on fly_preview_controller.tombstones;
create trigger tombstones_30_quota_wake after delete on fly_preview_controller.tombstones
  for each row when (old.held_slot)
  execute function public.fly_preview_apps_quota_wake();
revoke execute on function public.fly_preview_apps_quota_wake() from public, anon, authenticated;
revoke execute on function public.fly_preview_apps_tombstone() from public, anon, authenticated;
