-- The Supabase seam (issue 12).
-- 1. The web app's own writes are accepted as it sends them: its insert lists preview_url
--    (and may send error_message: null), it clears error_message on a redeploy. The values it
--    sends for derived columns are replaced by the truth (trigger below), never trusted.
-- 2. anon/authenticated hold exactly what the contract needs: no TRUNCATE, REFERENCES, TRIGGER
--    (Supabase's default privileges had given them ALL).
-- 3. The controller's bookkeeping lives in schema fly_preview_controller, which PostgREST does
--    not expose and anon/authenticated cannot use: the migration table (placed there by
--    sqlx.toml; an existing public._sqlx_migrations is moved there by `migrate` before this
--    runs) and the leader row (moved here from public).

create schema if not exists fly_preview_controller;
revoke all on schema fly_preview_controller from public, anon, authenticated;

do $$
begin
  if to_regclass('fly_preview_controller._sqlx_migrations') is not null then
    alter table fly_preview_controller._sqlx_migrations enable row level security;
    revoke all on fly_preview_controller._sqlx_migrations from public, anon, authenticated;
  end if;
  if to_regclass('public.fly_preview_controller_leader') is not null then
    if to_regclass('fly_preview_controller.leader') is null then
      alter table public.fly_preview_controller_leader set schema fly_preview_controller;
      alter table fly_preview_controller.fly_preview_controller_leader rename to leader;
    else
      drop table public.fly_preview_controller_leader;
    end if;
  end if;
end $$;

create table if not exists fly_preview_controller.leader (
  id integer primary key default 1 check (id = 1),
  holder text not null,
  expires_at timestamptz not null
);
alter table fly_preview_controller.leader enable row level security;
revoke all on fly_preview_controller.leader from public, anon, authenticated;

-- Privileges on the web app's table: exactly what the contract needs.
revoke all on public.fly_preview_apps from public, anon;
revoke truncate, references, trigger on public.fly_preview_apps from authenticated;
grant insert (preview_url, error_message) on public.fly_preview_apps to authenticated;
grant update (preview_url, error_message) on public.fly_preview_apps to authenticated;

-- Only the controller's role can mark a write as the controller's: a signed-in user or the
-- anon key setting fly_preview.controller is still a requester.
create or replace function public.fly_preview_apps_by_controller() returns boolean
  language sql stable set search_path = ''
  as $$
    select coalesce(pg_catalog.current_setting('fly_preview.controller', true), '') = 'on'
       and current_user::text not in ('anon', 'authenticated')
  $$;

-- Derived columns written by a requester are replaced by the truth:
--   preview_url   = 'https://' || fly_app_name || '.fly.dev' on insert; unchanged on update
--   error_message = null on insert; on update unchanged, except that a row that is now
--                   'pending' (a (re)deploy request) has no error yet
-- (status on insert and on update is translated by the triggers of 20261125000003.)
-- Fires after fly_preview_apps_05_status_write and the _10_ triggers (names sort), so it sees
-- the translated status.
create or replace function public.fly_preview_apps_derived() returns trigger
  language plpgsql set search_path = ''
  as $$
begin
  if public.fly_preview_apps_by_controller() then
    return new;
  end if;
  if tg_op = 'INSERT' then
    new.preview_url := 'https://' || new.fly_app_name || '.fly.dev';
    new.error_message := null;
  else
    new.preview_url := old.preview_url;
    new.error_message := case when new.status = 'pending' then null else old.error_message end;
  end if;
  return new;
end $$;

drop trigger if exists fly_preview_apps_15_derived on public.fly_preview_apps;
create trigger fly_preview_apps_15_derived before insert or update on public.fly_preview_apps
  for each row execute function public.fly_preview_apps_derived();

-- The controller's functions are not part of the Data API: Supabase's default privileges let
-- anon (and, through PUBLIC, everyone) call functions in public via /rest/v1/rpc. Only the
-- writers of fly_preview_apps need the helper its triggers call (as the writing role):
-- signed-in users, service_role, the table's owner, and the controller's own role
-- (deploy/sql/controller-role.sql). Trigger functions are only run as triggers.
revoke execute on function
  public.fly_preview_apps_by_controller(), public.fly_preview_apps_on_insert(),
  public.fly_preview_apps_on_status_write(), public.fly_preview_apps_on_update(),
  public.fly_preview_apps_touch(), public.fly_preview_apps_notify(),
  public.fly_preview_apps_derived()
  from public, anon, authenticated;
grant execute on function public.fly_preview_apps_by_controller() to authenticated, service_role;
