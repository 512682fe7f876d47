-- A save brings a preview back that a fix in the project's code repairs. A row in `error`
-- because its dev server crash-looped ('DevServerCrashed', runner exit 7), never served at
-- start ('DevServerNeverServed', 5), its dependencies did not install ('InstallFailed', 4 and
-- 6), it has no dev script ('NoDevScript', 4) or it ran out of memory ('OutOfMemory') is a
-- request to start the preview again as soon as the web app writes a new `revision` (the
-- user saved a fix): the
-- row becomes due at once with status_reason 'RestartOnSave' (a new request: requested_at is
-- now, so the deadline to become healthy starts again), and the controller starts its
-- machine again (the runner clones the branch head, which has the save). `revision` stays a
-- non-spec column: no generation bump.

create or replace function public.fly_preview_apps_restart_on_save() returns trigger
  language plpgsql set search_path = ''
  as $$
begin
  if public.fly_preview_apps_by_controller()
     or new.revision is not distinct from old.revision
     or old.status <> 'error'
     or old.status_reason is null
     or old.status_reason not in ('DevServerCrashed', 'DevServerNeverServed', 'InstallFailed',
                                  'NoDevScript', 'OutOfMemory')
     or new.desired_state <> 'running' then
    return new;
  end if;
  new.status_reason := 'RestartOnSave';
  new.attempts := 0;
  new.next_attempt_at := pg_catalog.now();
  new.requested_at := pg_catalog.now();
  -- The reconcile loop wakes on 'update' hints (a revision-only change sends 'revision',
  -- which only the sync lane reads).
  perform pg_catalog.pg_notify('fly_preview_apps',
    pg_catalog.json_build_object('op', 'update', 'id', new.id)::text);
  return new;
end $$;

drop trigger if exists fly_preview_apps_12_restart_on_save on public.fly_preview_apps;
create trigger fly_preview_apps_12_restart_on_save before update of revision on public.fly_preview_apps
  for each row execute function public.fly_preview_apps_restart_on_save();

-- Like the table's other functions: nobody calls it directly (a trigger needs no EXECUTE).
revoke execute on function public.fly_preview_apps_restart_on_save() from public, anon, authenticated;
