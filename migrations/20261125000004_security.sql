-- Row-level security and column privileges for signed-in users of the web app.
-- A user sees, inserts, updates and deletes only their own rows, and may write only the
-- steering columns; controller-owned columns, fly_app_name and user_id are not theirs to
-- change after insert. The controller connects as a role that bypasses RLS (postgres /
-- service_role) or a dedicated role given its own policy (see README).

alter table public.fly_preview_apps enable row level security;

-- The web app's own seed-era policies ("Users can ... their own preview apps", granted to
-- PUBLIC with an unwrapped auth.uid()) are superseded by the equivalent-or-stricter policies
-- below (authenticated only, (select auth.uid()) InitPlan form). Any other policy is kept.
do $$
declare
  p record;
begin
  for p in
    select policyname from pg_catalog.pg_policies
     where schemaname = 'public' and tablename = 'fly_preview_apps'
       and policyname in ('Users can view their own preview apps',
                          'Users can create their own preview apps',
                          'Users can update their own preview apps',
                          'Users can delete their own preview apps')
  loop
    raise warning 'fly_preview_apps: policy "%" superseded by fly_preview_apps_*_own', p.policyname;
    execute format('drop policy %I on public.fly_preview_apps', p.policyname);
  end loop;
  for p in
    select policyname from pg_catalog.pg_policies
     where schemaname = 'public' and tablename = 'fly_preview_apps'
       and policyname not like 'fly_preview_apps\_%\_own'
  loop
    raise warning 'fly_preview_apps: keeping existing policy "%" (permissive policies are OR-ed)', p.policyname;
  end loop;
end $$;

drop policy if exists fly_preview_apps_select_own on public.fly_preview_apps;
create policy fly_preview_apps_select_own on public.fly_preview_apps
  for select to authenticated using ((select auth.uid()) = user_id);
drop policy if exists fly_preview_apps_insert_own on public.fly_preview_apps;
create policy fly_preview_apps_insert_own on public.fly_preview_apps
  for insert to authenticated with check ((select auth.uid()) = user_id);
drop policy if exists fly_preview_apps_update_own on public.fly_preview_apps;
create policy fly_preview_apps_update_own on public.fly_preview_apps
  for update to authenticated
  using ((select auth.uid()) = user_id) with check ((select auth.uid()) = user_id);
drop policy if exists fly_preview_apps_delete_own on public.fly_preview_apps;
create policy fly_preview_apps_delete_own on public.fly_preview_apps
  for delete to authenticated using ((select auth.uid()) = user_id);

-- Column privileges: revoking the table-wide privileges also revokes column grants.
revoke all on public.fly_preview_apps from anon;
revoke insert, update on public.fly_preview_apps from authenticated;
grant select, delete on public.fly_preview_apps to authenticated;
grant insert (user_id, project_id, fly_app_name, github_repo_url, github_branch, status, desired_state)
  on public.fly_preview_apps to authenticated;
grant update (github_repo_url, github_branch, status, desired_state)
  on public.fly_preview_apps to authenticated;
grant all on public.fly_preview_apps to service_role;

-- Leader election for the orphan sweep: one row, a holder and a TTL.
create table if not exists public.fly_preview_controller_leader (
  id integer primary key default 1 check (id = 1),
  holder text not null,
  expires_at timestamptz not null
);
alter table public.fly_preview_controller_leader enable row level security;
revoke all on public.fly_preview_controller_leader from anon, authenticated;
