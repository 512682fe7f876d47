-- The controller's own least-privilege role: fly_preview_reconciler.
-- NOSUPERUSER, NOBYPASSRLS: it sees and writes every row only through its own policies, and
-- holds only the privileges `fly-preview-controller run` needs:
--   public.fly_preview_apps                    SELECT, UPDATE (claims, leases, status writes)
--   public.fly_preview_events                  SELECT, INSERT (the timeline, written with the
--                                              status; pruning is the table's own trigger)
--   fly_preview_controller.leader              SELECT, INSERT, UPDATE, DELETE (who leads; the
--                                              leadership lock itself, pg_advisory_lock, needs no grant)
--   fly_preview_controller.tombstones          SELECT, UPDATE, DELETE (teardown of deleted rows:
--                                              claims, leases, retries; a finished one is deleted;
--                                              the delete trigger, not this role, inserts them)
--   public.fly_preview_env                     SELECT (each preview's variables, to deliver them)
--   fly_preview_controller.env_secrets         SELECT (the secret variables' values, which the
--                                              web app writes and nobody reads back)
--   fly_preview_controller._sqlx_migrations    SELECT (`run` refuses an unmigrated schema)
--   fly_preview_controller.settings            SELECT (the app-name prefix the database derives
--                                              names with; the per-user row cap)
--   public.fly_preview_apps_by_controller()    EXECUTE (the table's triggers call it)
--   fly_preview_controller.status_counts()     EXECUTE (rows by status for the metrics; it
--                                              folds the counts the table's triggers keep)
--   fly_preview_controller.status_totals,      SELECT (those counts; read through the
--     fly_preview_controller.status_deltas     function above)
-- It cannot insert or delete previews, change the schema, or read anything else.
--
-- Run it once, after `fly-preview-controller migrate`, as the role that ran the migrations
-- (on Supabase: `postgres`, e.g. in the SQL editor or with psql). Running it again is a no-op.
-- Then give the role a password and use it in DATABASE_URL:
--   alter role fly_preview_reconciler password '<a long random password>';
--   direct:          postgresql://fly_preview_reconciler:<pw>@db.<ref>.supabase.co:5432/postgres
--   session pooler:  postgresql://fly_preview_reconciler.<ref>:<pw>@aws-<n>-<region>.pooler.supabase.com:5432/postgres
-- `run` checks at start that its role can see and write every row and exits 2 otherwise.

do $$
begin
  if not exists (select 1 from pg_catalog.pg_roles where rolname = 'fly_preview_reconciler') then
    begin
      create role fly_preview_reconciler login nosuperuser nobypassrls nocreatedb nocreaterole;
    exception when duplicate_object or unique_violation then
      null; -- created concurrently (roles are cluster-wide)
    end;
  end if;
end $$;

grant usage on schema public, fly_preview_controller to fly_preview_reconciler;
grant select, update on public.fly_preview_apps to fly_preview_reconciler;
grant select, insert on public.fly_preview_events to fly_preview_reconciler;
grant select, insert, update, delete on fly_preview_controller.leader to fly_preview_reconciler;
grant select, update, delete on fly_preview_controller.tombstones to fly_preview_reconciler;
grant select on public.fly_preview_env, fly_preview_controller.env_secrets to fly_preview_reconciler;
grant select on fly_preview_controller._sqlx_migrations to fly_preview_reconciler;
grant select on fly_preview_controller.settings to fly_preview_reconciler;
grant execute on function public.fly_preview_apps_by_controller() to fly_preview_reconciler;
grant execute on function fly_preview_controller.status_counts() to fly_preview_reconciler;
grant select on fly_preview_controller.status_totals, fly_preview_controller.status_deltas
  to fly_preview_reconciler;

-- Row-level security: every row, for this role only (the web app's users keep their own
-- policies; anon and authenticated gain nothing).
drop policy if exists fly_preview_apps_reconciler_select on public.fly_preview_apps;
create policy fly_preview_apps_reconciler_select on public.fly_preview_apps
  for select to fly_preview_reconciler using (true);
drop policy if exists fly_preview_apps_reconciler_update on public.fly_preview_apps;
create policy fly_preview_apps_reconciler_update on public.fly_preview_apps
  for update to fly_preview_reconciler using (true) with check (true);
drop policy if exists fly_preview_events_reconciler_select on public.fly_preview_events;
create policy fly_preview_events_reconciler_select on public.fly_preview_events
  for select to fly_preview_reconciler using (true);
drop policy if exists fly_preview_events_reconciler_insert on public.fly_preview_events;
create policy fly_preview_events_reconciler_insert on public.fly_preview_events
  for insert to fly_preview_reconciler with check (true);
drop policy if exists leader_reconciler_all on fly_preview_controller.leader;
create policy leader_reconciler_all on fly_preview_controller.leader
  for all to fly_preview_reconciler using (true) with check (true);
drop policy if exists tombstones_reconciler_all on fly_preview_controller.tombstones;
create policy tombstones_reconciler_all on fly_preview_controller.tombstones
  for all to fly_preview_reconciler using (true) with check (true);
drop policy if exists fly_preview_env_reconciler_select on public.fly_preview_env;
create policy fly_preview_env_reconciler_select on public.fly_preview_env
  for select to fly_preview_reconciler using (true);
drop policy if exists env_secrets_reconciler_select on fly_preview_controller.env_secrets;
create policy env_secrets_reconciler_select on fly_preview_controller.env_secrets
  for select to fly_preview_reconciler using (true);
drop policy if exists sqlx_migrations_reconciler_select on fly_preview_controller._sqlx_migrations;
create policy sqlx_migrations_reconciler_select on fly_preview_controller._sqlx_migrations
  for select to fly_preview_reconciler using (true);
drop policy if exists settings_reconciler_select on fly_preview_controller.settings;
create policy settings_reconciler_select on fly_preview_controller.settings
  for select to fly_preview_reconciler using (true);
drop policy if exists status_totals_reconciler_select on fly_preview_controller.status_totals;
create policy status_totals_reconciler_select on fly_preview_controller.status_totals
  for select to fly_preview_reconciler using (true);
drop policy if exists status_deltas_reconciler_select on fly_preview_controller.status_deltas;
create policy status_deltas_reconciler_select on fly_preview_controller.status_deltas
  for select to fly_preview_reconciler using (true);
