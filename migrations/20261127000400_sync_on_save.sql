-- Sync on save (issue 15): the web app says "I pushed commit X" by writing `revision`; the
-- controller asks the running machine to fetch now and records the commit it confirmed in
-- `served_revision` / `served_revision_at`. See docs/sync-on-save.md for the row contract.
--
-- `revision` is a git commit sha (7–64 hex digits; the full 40/64-digit form is recommended),
-- not an opaque token: the runner answers `sync` with the sha it serves, so the controller can
-- confirm that the preview serves exactly that commit (a token would only say "something
-- happened"). Changing `revision` is NOT a spec change: no generation bump, no status flip, no
-- machine update; the generation trigger (fly_preview_apps_on_update) only looks at
-- github_repo_url / github_branch / desired_state, so it is left as it is.

alter table public.fly_preview_apps
  add column if not exists revision text,
  add column if not exists served_revision text,
  add column if not exists served_revision_at timestamptz;

alter table public.fly_preview_apps drop constraint if exists fly_preview_apps_revision_check;
alter table public.fly_preview_apps add constraint fly_preview_apps_revision_check
  check (revision is null or revision ~ '^[0-9a-fA-F]{7,64}$');

-- The sync lane's sweep ("which rows are not confirmed yet?") reads only this small index.
create index if not exists fly_preview_apps_sync_pending_idx on public.fly_preview_apps (id)
  where revision is distinct from served_revision;

-- AFTER: the NOTIFY hint, now also `{"op":"revision","id":…}` when only `revision` changed,
-- so the controller's sync lane reacts within milliseconds. A write that changes both the
-- spec and `revision` sends the spec change (`update`); the sync lane's sweep catches up.
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
  elsif new.revision is distinct from old.revision then
    perform pg_catalog.pg_notify('fly_preview_apps',
      pg_catalog.json_build_object('op', 'revision', 'id', new.id)::text);
  end if;
  return new;
end $$;

-- `revision` is a steering column: the signed-in user may write it (own rows only, RLS as for
-- the other steering columns). served_revision / served_revision_at are the controller's.
grant insert (revision) on public.fly_preview_apps to authenticated;
grant update (revision) on public.fly_preview_apps to authenticated;
