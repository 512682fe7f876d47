id, user_id, project_id::text AS project_id, fly_app_name, preview_url, status,
error_message, github_repo_url, github_branch, desired_state, generation,
observed_generation, status_reason, fly_machine_id, machine_state, attempts,
CASE WHEN isfinite(next_attempt_at) THEN next_attempt_at END AS next_attempt_at,
lease_owner, lease_expires_at, last_transition_at, requested_at, created_at, updated_at,
status_detail, root_directory,
redeploys, redeploy_window_start, redeploy_generation, fly_app_created, opened_at
