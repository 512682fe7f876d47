-- Supabase stand-ins: create the roles, schema `auth` and `auth.uid()` ONLY where they are
-- missing. On Supabase every one of these already exists (owned by Supabase's own roles) and
-- this file changes nothing there; on plain Postgres (CI, local) it creates them.
-- Roles are cluster-global: parallel test databases race on CREATE ROLE, hence the
-- duplicate_object/unique_violation guards.
do $$
declare
  r text;
begin
  foreach r in array array['anon', 'authenticated', 'service_role'] loop
    if not exists (select 1 from pg_catalog.pg_roles where rolname = r) then
      begin
        execute format('create role %I nologin noinherit', r)
          || case when r = 'service_role' then ' bypassrls' else '' end;
      exception when duplicate_object or unique_violation then
        null;
      end;
    end if;
  end loop;
end $$;

do $$
begin
  if to_regnamespace('auth') is null then
    begin
      create schema auth;
    exception when duplicate_schema then
      null;
    end;
  end if;
  -- Never CREATE OR REPLACE: on Supabase auth.uid() belongs to supabase_auth_admin.
  if to_regprocedure('auth.uid()') is null then
    create function auth.uid() returns uuid
      language sql stable
      set search_path = ''
      as $f$
        select nullif(
          coalesce(
            pg_catalog.current_setting('request.jwt.claim.sub', true),
            nullif(pg_catalog.current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'
          ), '')::uuid
      $f$;
    grant usage on schema auth to anon, authenticated, service_role;
    grant execute on function auth.uid() to anon, authenticated, service_role;
  end if;
end $$;
