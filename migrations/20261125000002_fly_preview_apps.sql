-- public.fly_preview_apps: the web app's table plus the controller's columns.
-- Works on a fresh database AND upgrades the web app's existing table in place (its
-- 003_add_fly_preview_apps.sql): every statement is "if not exists"/guarded, no row or
-- existing column is dropped, and the backfill only fills the new columns.

create table if not exists public.fly_preview_apps (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null,
  project_id text not null,
  fly_app_name text not null constraint fly_preview_apps_fly_app_name_key unique,
  preview_url text,
  status text not null default 'pending',
  error_message text,
  github_repo_url text,
  github_branch text default 'main',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

-- Controller columns. Defaults make every existing row a pending request (observed 0 < 1).
alter table public.fly_preview_apps
  add column if not exists desired_state text not null default 'running',
  add column if not exists generation bigint not null default 1,
  add column if not exists observed_generation bigint not null default 0,
  add column if not exists status_reason text,
  add column if not exists fly_machine_id text,
  add column if not exists machine_state text,
  add column if not exists attempts integer not null default 0,
  add column if not exists next_attempt_at timestamptz not null default now(),
  add column if not exists lease_owner text,
  add column if not exists lease_expires_at timestamptz,
  add column if not exists last_transition_at timestamptz not null default now(),
  add column if not exists requested_at timestamptz not null default now();

-- Backfill for an upgraded table: rows its API marked 'stopped' are teardown requests.
update public.fly_preview_apps
   set desired_state = 'stopped', status_reason = 'TeardownRequested'
 where status = 'stopped' and desired_state = 'running';
update public.fly_preview_apps
   set status_reason = 'DeployRequested'
 where status_reason is null;

-- Constraints (replacing the web app's own status check, which allowed the same values).
alter table public.fly_preview_apps drop constraint if exists fly_preview_apps_status_check;
alter table public.fly_preview_apps add constraint fly_preview_apps_status_check
  check (status in ('pending', 'initializing', 'running', 'stopped', 'error'));
alter table public.fly_preview_apps drop constraint if exists fly_preview_apps_desired_state_check;
alter table public.fly_preview_apps add constraint fly_preview_apps_desired_state_check
  check (desired_state in ('running', 'stopped'));
alter table public.fly_preview_apps drop constraint if exists fly_preview_apps_generation_check;
alter table public.fly_preview_apps add constraint fly_preview_apps_generation_check
  check (generation >= 1 and observed_generation >= 0 and attempts >= 0);
create unique index if not exists fly_preview_apps_fly_app_name_key
  on public.fly_preview_apps (fly_app_name);

-- Claiming due work scans next_attempt_at; RLS filters on user_id.
create index if not exists fly_preview_apps_due_idx on public.fly_preview_apps (next_attempt_at);
create index if not exists fly_preview_apps_user_id_idx on public.fly_preview_apps (user_id);
