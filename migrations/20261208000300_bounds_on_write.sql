-- The text bounds check what is written, not what is already stored (issue 23):
-- 20261207000100 added the bounds as a NOT VALID CHECK. PostgreSQL evaluates a CHECK on every
-- new row version, so a row stored before the bounds (a 1 MB project_id, a 2,000-byte
-- branch) refused every later UPDATE of it, the controller's own status and lease writes
-- included: the row was stuck, and so was its owner's stop. Repairing such rows is not
-- possible without rewriting what the user wrote (project_id is part of the row's identity
-- and of its derived name), so the bound moves to what a write changes:
--  * BEFORE INSERT: every bounded column is checked;
--  * BEFORE UPDATE: a bounded column is checked only when the row's new version changes it
--    (`IS DISTINCT FROM OLD`, in the trigger's WHEN: other writes cost no function call), so the controller's writes and a user's stop or delete of a
--    legacy row go through, and a user who fixes the column (writes a value within the bound)
--    is let through as well;
--  * the error is the CHECK's own: SQLSTATE 23514 naming constraint
--    fly_preview_apps_text_bounds_check and the column, so clients see what they saw before.
-- The controller's own validation (tighter, with its messages) turns a legacy row it cannot
-- deploy into `error` naming the field, as for any invalid row.
--
-- Also, the claim's lease writes (and the controller's other writes) call fewer trigger
-- functions: the spec-change trigger fires only when a spec column or the generation changes,
-- the derived-columns trigger not at all for the controller (WHEN clauses, evaluated without a
-- PL/pgSQL call); the functions are unchanged.

create or replace function public.fly_preview_apps_text_bounds() returns trigger
  language plpgsql set search_path = ''
  as $$
declare
  bad text;
begin
  if (tg_op = 'INSERT' or new.project_id::text is distinct from old.project_id::text)
     and pg_catalog.octet_length(new.project_id::text) not between 1 and 256 then
    bad := 'project_id must be 1 to 256 bytes';
  elsif (tg_op = 'INSERT' or new.fly_app_name is distinct from old.fly_app_name)
     and pg_catalog.octet_length(new.fly_app_name) > 63 then
    bad := 'fly_app_name must be at most 63 bytes';
  elsif (tg_op = 'INSERT' or new.github_repo_url is distinct from old.github_repo_url)
     and pg_catalog.octet_length(new.github_repo_url) > 4096 then
    bad := 'github_repo_url must be at most 4096 bytes';
  elsif (tg_op = 'INSERT' or new.github_branch is distinct from old.github_branch)
     and pg_catalog.octet_length(new.github_branch) > 1024 then
    bad := 'github_branch must be at most 1024 bytes';
  end if;
  if bad is not null then
    raise exception 'fly_preview_apps: % (new row violates check constraint "fly_preview_apps_text_bounds_check")', bad
      using errcode = '23514', constraint = 'fly_preview_apps_text_bounds_check',
            table = 'fly_preview_apps', schema = 'public';
  end if;
  return new;
end $$;
revoke execute on function public.fly_preview_apps_text_bounds() from public, anon, authenticated;

-- After _12_name (which derives fly_app_name on insert), before _15_derived.
drop trigger if exists fly_preview_apps_13_bounds_insert on public.fly_preview_apps;
create trigger fly_preview_apps_13_bounds_insert before insert on public.fly_preview_apps
  for each row execute function public.fly_preview_apps_text_bounds();
drop trigger if exists fly_preview_apps_13_bounds_update on public.fly_preview_apps;
create trigger fly_preview_apps_13_bounds_update before update on public.fly_preview_apps
  for each row
  when (new.project_id::text is distinct from old.project_id::text
        or new.fly_app_name is distinct from old.fly_app_name
        or new.github_repo_url is distinct from old.github_repo_url
        or new.github_branch is distinct from old.github_branch)
  execute function public.fly_preview_apps_text_bounds();

alter table public.fly_preview_apps drop constraint if exists fly_preview_apps_text_bounds_check;

-- The spec-change trigger (fly_preview_apps_on_update, last defined in 20261207000220) acts
-- only when a spec column or the generation changes; say so in the trigger itself.
drop trigger if exists fly_preview_apps_10_update on public.fly_preview_apps;
create trigger fly_preview_apps_10_update before update on public.fly_preview_apps
  for each row
  when (new.github_repo_url is distinct from old.github_repo_url
        or new.github_branch is distinct from old.github_branch
        or new.root_directory is distinct from old.root_directory
        or new.desired_state is distinct from old.desired_state
        or new.generation is distinct from old.generation)
  execute function public.fly_preview_apps_on_update();

-- The derived-columns trigger (fly_preview_apps_derived, 20261127000100) returns at once for
-- the controller's own writes; the same test in its WHEN spares the call.
drop trigger if exists fly_preview_apps_15_derived on public.fly_preview_apps;
create trigger fly_preview_apps_15_derived before insert or update on public.fly_preview_apps
  for each row when (not public.fly_preview_apps_by_controller())
  execute function public.fly_preview_apps_derived();

-- The NOTIFY trigger (fly_preview_apps_notify) sends nothing for an update that changes
-- neither the generation nor the revision (a lease, a status write): its update trigger says
-- so in its WHEN; inserts and deletes always notify, as before.
drop trigger if exists fly_preview_apps_90_notify on public.fly_preview_apps;
create trigger fly_preview_apps_90_notify after insert or delete on public.fly_preview_apps
  for each row execute function public.fly_preview_apps_notify();
drop trigger if exists fly_preview_apps_90_notify_update on public.fly_preview_apps;
create trigger fly_preview_apps_90_notify_update after update on public.fly_preview_apps
  for each row
  when (new.generation <> old.generation or new.revision is distinct from old.revision)
  execute function public.fly_preview_apps_notify();

-- The rows holding a quota slot (src/store/sql/active_previews.sql, the same predicate written
-- out literally): admitting or refusing a row counts only these, not the user's pending or
-- parked rows, so a refusal costs the same with 20 or 20,000 rows waiting.
create index if not exists fly_preview_apps_slot_idx
  on public.fly_preview_apps (user_id)
  where (desired_state = 'running'
         and status_reason is distinct from 'QuotaExceeded'
         and (status in ('initializing', 'running', 'error')
              or (status = 'pending' and fly_machine_id is not null)))
     or (desired_state = 'stopped' and fly_machine_id is not null);
