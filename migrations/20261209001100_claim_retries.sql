-- The claim's retries of work someone waits for, and a cheaper lease write.
-- 1. Retries (attempts > 0) of a deploy, a spec change or a status request not yet observed,
--    and of a deploy in progress, in due order: the claim's window of them
--    (src/store/sql/claim.sql writes the predicate out literally so the planner uses this
--    partial index). A retry falls due after the rows that queued before it; in the other
--    windows a burst of new rows kept it out until the burst was worked off, and the time its
--    message promised ("retrying automatically at …") passed by tens of seconds.
-- 2. The touch trigger (updated_at) fires only for updates that name a column other than the
--    lease's (lease_owner, lease_expires_at) or updated_at itself. Its WHEN compared both rows
--    as jsonb for every update, the lease writes of the claim and of renewals included (a
--    quarter of the claim's database CPU); a lease write names only the lease's columns, so it
--    now runs no trigger at all. What fires it is unchanged: any change of another column.
--    A migration that adds a column adds it to this list (test
--    store_claim::the_touch_trigger_names_every_column_but_the_lease).

create index if not exists fly_preview_apps_retry_due_idx
  on public.fly_preview_apps (next_attempt_at)
  where attempts > 0 and (observed_generation < generation or status = 'initializing');

drop trigger if exists fly_preview_apps_20_touch on public.fly_preview_apps;
create trigger fly_preview_apps_20_touch
  before update of
    id, user_id, project_id, fly_app_name, preview_url, status, error_message,
    github_repo_url, github_branch, created_at, desired_state, generation,
    observed_generation, status_reason, fly_machine_id, machine_state, attempts,
    next_attempt_at, last_transition_at, requested_at, redeploys, redeploy_window_start,
    redeploy_generation, status_detail, revision, served_revision, served_revision_at,
    root_directory, fly_app_created, opened_at
  on public.fly_preview_apps
  for each row
  when ((pg_catalog.to_jsonb(old) - 'lease_owner' - 'lease_expires_at' - 'updated_at')
        is distinct from (pg_catalog.to_jsonb(new) - 'lease_owner' - 'lease_expires_at' - 'updated_at'))
  execute function public.fly_preview_apps_touch();
