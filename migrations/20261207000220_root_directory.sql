-- `root_directory` (steering, written by the web app, optional): the app's folder inside the
-- repository, for monorepos (e.g. `apps/web`). NULL or '' = the repository root. The
-- controller validates it like branch names before any Fly call (a relative path: no `..`
-- segment, no leading `/`, no control or invisible characters, at most 255 bytes; a bad value
-- turns the row into `error`, reason InvalidSpec, with a precise message) and passes it to
-- the machine as ROOT_DIRECTORY. Changing it is a spec change: a new generation, like a
-- branch change (the update trigger below), and the machine is updated in place.

alter table public.fly_preview_apps add column if not exists root_directory text;

-- The signed-in user may write it on their own rows (RLS as for the other steering columns).
grant insert (root_directory) on public.fly_preview_apps to authenticated;
grant update (root_directory) on public.fly_preview_apps to authenticated;

-- BEFORE UPDATE: bump the generation on a spec change and reset the backoff. Unchanged from
-- 20261125000003_triggers.sql but for `root_directory` among the spec columns.
create or replace function public.fly_preview_apps_on_update() returns trigger
  language plpgsql set search_path = ''
  as $$
begin
  if new.github_repo_url is distinct from old.github_repo_url
     or new.github_branch is distinct from old.github_branch
     or new.root_directory is distinct from old.root_directory
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
