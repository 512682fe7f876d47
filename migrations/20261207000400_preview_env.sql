-- Per-preview environment variables, written by the web app: one row per variable of the
-- preview with the same (user_id, project_id), whether that preview row exists yet or not.
--
-- A secret's value never stays in this table: the write trigger moves it into
-- fly_preview_controller.env_secrets (a schema PostgREST does not expose and API roles cannot
-- use) and stores NULL here, so nobody reads a secret back through the API, the dashboard's
-- table view or a `select *` (it can be replaced or deleted). A non-secret value stays here.
--
-- Validation is the database's (a refused write is one clear error and nothing partial):
--   name   ^[A-Za-z_][A-Za-z0-9_]{0,127}$, not reserved (fly_preview_env_name_reserved)
--   value  required, at most 4 KiB (text cannot hold NUL: Postgres refuses it before us)
--   a preview at most 64 variables and 64 KiB of names plus values, secrets included.

create table if not exists public.fly_preview_env (
  user_id uuid not null,
  project_id text not null,
  name text not null,
  value text,
  secret boolean not null default true,
  created_at timestamptz not null default pg_catalog.now(),
  updated_at timestamptz not null default pg_catalog.now(),
  primary key (user_id, project_id, name),
  constraint fly_preview_env_project_id_length check (octet_length(project_id) between 1 and 255),
  constraint fly_preview_env_name_format check (name ~ '^[A-Za-z_][A-Za-z0-9_]{0,127}$'),
  constraint fly_preview_env_value_size check (value is null or octet_length(value) <= 4096),
  -- Names the preview machine's runner and Fly own (any case): a variable may not shadow them.
  constraint fly_preview_env_name_reserved check (not (
    upper(name) = any (array[
      'PORT', 'HOST', 'HOSTNAME', 'DEV_PORT', 'REPO_URL', 'REPO_BRANCH', 'ROOT_DIRECTORY',
      'SYNC_INTERVAL', 'INSTALL_TIMEOUT', 'FAILURE_LINGER', 'WORKDIR', 'RUNNER_CONTROL_SOCKET',
      'ALLOWED_HOSTS', 'NODE_OPTIONS', 'PATH', 'HOME'])
    or upper(name) like 'FLY\_%'))
);

create table if not exists fly_preview_controller.env_secrets (
  user_id uuid not null,
  project_id text not null,
  name text not null,
  value text not null,
  primary key (user_id, project_id, name)
);
alter table fly_preview_controller.env_secrets enable row level security;
revoke all on fly_preview_controller.env_secrets from public, anon, authenticated;

-- A user's variables and secrets go with the user (auth.users exists on Supabase; plain
-- Postgres test databases have no auth tables).
do $$
begin
  if to_regclass('auth.users') is not null then
    alter table public.fly_preview_env drop constraint if exists fly_preview_env_user_id_fkey;
    alter table public.fly_preview_env add constraint fly_preview_env_user_id_fkey
      foreign key (user_id) references auth.users (id) on delete cascade;
    alter table fly_preview_controller.env_secrets drop constraint if exists env_secrets_user_id_fkey;
    alter table fly_preview_controller.env_secrets add constraint env_secrets_user_id_fkey
      foreign key (user_id) references auth.users (id) on delete cascade;
  end if;
end $$;

-- BEFORE INSERT OR UPDATE: one writer per preview at a time (the limits below count the
-- preview's variables), a value on every write that needs one, secrets moved out of the table.
-- Security definer: the writer (a signed-in user) has no privilege on the controller's schema.
create or replace function public.fly_preview_env_write() returns trigger
  language plpgsql security definer set search_path = ''
  as $$
begin
  perform pg_catalog.pg_advisory_xact_lock(1718646127,
    pg_catalog.hashtext(new.user_id::text || '/' || new.project_id));
  if tg_op = 'UPDATE' and (new.user_id, new.project_id, new.name)
       is distinct from (old.user_id, old.project_id, old.name) then
    raise exception 'fly_preview_env: a variable cannot be renamed or moved; delete it and insert it again'
      using errcode = '22023';
  end if;
  if tg_op = 'UPDATE' and old.secret and not new.secret and new.value is null then
    raise exception 'fly_preview_env: making % non-secret needs its new value in the same write', new.name
      using errcode = '22023';
  end if;
  if new.value is null and (tg_op = 'INSERT' or not old.secret) then
    raise exception 'fly_preview_env: % needs a value', new.name using errcode = '23502';
  end if;
  if pg_catalog.octet_length(new.value) > 4096 then
    raise exception 'fly_preview_env: the value of % is % bytes; at most 4096 (4 KiB)',
      new.name, pg_catalog.octet_length(new.value) using errcode = '23514';
  end if;
  if new.secret and new.value is not null then
    insert into fly_preview_controller.env_secrets as s (user_id, project_id, name, value)
    values (new.user_id, new.project_id, new.name, new.value)
    on conflict (user_id, project_id, name) do update set value = excluded.value;
    new.value := null;
  elsif not new.secret then
    delete from fly_preview_controller.env_secrets s
     where (s.user_id, s.project_id, s.name) = (new.user_id, new.project_id, new.name);
  end if;
  new.updated_at := pg_catalog.now();
  if tg_op = 'INSERT' then
    new.created_at := pg_catalog.now();
  end if;
  return new;
end $$;

-- AFTER INSERT OR UPDATE: the preview's limits, secrets included (the row's own write is
-- visible here, a concurrent writer waits on the lock above).
create or replace function public.fly_preview_env_limits() returns trigger
  language plpgsql security definer set search_path = ''
  as $$
declare
  n integer;
  bytes bigint;
begin
  select pg_catalog.count(*),
         pg_catalog.sum(pg_catalog.octet_length(e.name)
                        + pg_catalog.octet_length(coalesce(e.value, s.value, '')))
    into n, bytes
    from public.fly_preview_env e
    left join fly_preview_controller.env_secrets s
      on (s.user_id, s.project_id, s.name) = (e.user_id, e.project_id, e.name)
   where e.user_id = new.user_id and e.project_id = new.project_id;
  if n > 64 then
    raise exception 'fly_preview_env: a preview has at most 64 variables (this write makes %)', n
      using errcode = '54000';
  end if;
  if bytes > 65536 then
    raise exception 'fly_preview_env: a preview''s variables hold at most 64 KiB of names and values (this write makes % bytes)', bytes
      using errcode = '54000';
  end if;
  return null;
end $$;

-- AFTER DELETE: the secret goes with its variable.
create or replace function public.fly_preview_env_forget() returns trigger
  language plpgsql security definer set search_path = ''
  as $$
begin
  delete from fly_preview_controller.env_secrets s
   where (s.user_id, s.project_id, s.name) = (old.user_id, old.project_id, old.name);
  return null;
end $$;

drop trigger if exists fly_preview_env_10_write on public.fly_preview_env;
create trigger fly_preview_env_10_write before insert or update on public.fly_preview_env
  for each row execute function public.fly_preview_env_write();
drop trigger if exists fly_preview_env_20_limits on public.fly_preview_env;
create trigger fly_preview_env_20_limits after insert or update on public.fly_preview_env
  for each row execute function public.fly_preview_env_limits();
drop trigger if exists fly_preview_env_30_forget on public.fly_preview_env;
create trigger fly_preview_env_30_forget after delete on public.fly_preview_env
  for each row execute function public.fly_preview_env_forget();
-- AFTER each statement: a preview that wants to run and whose variables changed boots again
-- with them (a new generation, reason EnvChanged; the row's own triggers reset its backoff and
-- notify the controller). Once per preview per statement, however many variables it wrote.
create or replace function public.fly_preview_env_changed() returns trigger
  language plpgsql security definer set search_path = ''
  as $$
begin
  update public.fly_preview_apps a
     set generation = a.generation + 1, status_reason = 'EnvChanged'
    from (select distinct c.user_id, c.project_id from changed c) c
   where a.user_id = c.user_id and a.project_id = c.project_id
     and a.desired_state = 'running';
  return null;
end $$;

drop trigger if exists fly_preview_env_40_changed_insert on public.fly_preview_env;
create trigger fly_preview_env_40_changed_insert after insert on public.fly_preview_env
  referencing new table as changed
  for each statement execute function public.fly_preview_env_changed();
drop trigger if exists fly_preview_env_40_changed_update on public.fly_preview_env;
create trigger fly_preview_env_40_changed_update after update on public.fly_preview_env
  referencing new table as changed
  for each statement execute function public.fly_preview_env_changed();
drop trigger if exists fly_preview_env_40_changed_delete on public.fly_preview_env;
create trigger fly_preview_env_40_changed_delete after delete on public.fly_preview_env
  referencing old table as changed
  for each statement execute function public.fly_preview_env_changed();

revoke execute on function public.fly_preview_env_write(), public.fly_preview_env_limits(),
  public.fly_preview_env_forget(), public.fly_preview_env_changed() from public, anon, authenticated;

-- Row-level security: a signed-in user reaches only their own variables; anon nothing.
alter table public.fly_preview_env enable row level security;
drop policy if exists fly_preview_env_select_own on public.fly_preview_env;
create policy fly_preview_env_select_own on public.fly_preview_env
  for select to authenticated using ((select auth.uid()) = user_id);
drop policy if exists fly_preview_env_insert_own on public.fly_preview_env;
create policy fly_preview_env_insert_own on public.fly_preview_env
  for insert to authenticated with check ((select auth.uid()) = user_id);
drop policy if exists fly_preview_env_update_own on public.fly_preview_env;
create policy fly_preview_env_update_own on public.fly_preview_env
  for update to authenticated
  using ((select auth.uid()) = user_id) with check ((select auth.uid()) = user_id);
drop policy if exists fly_preview_env_delete_own on public.fly_preview_env;
create policy fly_preview_env_delete_own on public.fly_preview_env
  for delete to authenticated using ((select auth.uid()) = user_id);

revoke all on public.fly_preview_env from anon, authenticated;
grant select, delete on public.fly_preview_env to authenticated;
grant insert (user_id, project_id, name, value, secret) on public.fly_preview_env to authenticated;
grant update (value, secret) on public.fly_preview_env to authenticated;
grant all on public.fly_preview_env to service_role;

-- A preview's variables are read together, by (user_id, project_id): the primary key serves it.
