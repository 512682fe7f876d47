-- Whether a row may have a Fly app: the controller sets `fly_app_created` before its first call
-- that can create one (and when a deleted row's app is kept for a row of the same name), and
-- never clears it while the row lives. A row that never had an app (never deployed, refused for
-- quota, invalid) costs no Fly call to stop or delete.
--
-- Existing rows may have apps: the column is added with default true (stored once for them,
-- no table rewrite), then new rows default to false. Controller-owned: signed-in users hold no
-- privilege on it (column grants, 20261127000100_supabase_seam.sql).
alter table public.fly_preview_apps
  add column if not exists fly_app_created boolean not null default true;
alter table public.fly_preview_apps
  alter column fly_app_created set default false;

-- A deleted row that never had an app needs no teardown: the tombstone trigger
-- (20261206000100_tombstones.sql, function unchanged) fires only for rows that may have one.
-- A tombstone still pending for the same id (a row re-inserted under it) is left as it is.
drop trigger if exists fly_preview_apps_80_tombstone on public.fly_preview_apps;
create trigger fly_preview_apps_80_tombstone after delete on public.fly_preview_apps
  for each row when (old.fly_app_created)
  execute function public.fly_preview_apps_tombstone();

-- With no teardown, nothing else ends the deleted preview's timeline (20261207000210_timeline.sql
-- forgets it when the tombstone goes): it goes with the row, after the 'deleted' event
-- (85_event_delete) was written.
drop trigger if exists fly_preview_apps_86_no_app_forget_events on public.fly_preview_apps;
create trigger fly_preview_apps_86_no_app_forget_events after delete on public.fly_preview_apps
  for each row when (not old.fly_app_created)
  execute function public.fly_preview_events_forget();
