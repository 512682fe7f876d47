-- sync_claim: lease row $1 to replica $2 for $3 seconds for a sync on save, if it is a running
-- preview ($4 status, $5 desired_state), converged (no deploy pending), whose started ($6)
-- machine has not confirmed `revision` yet. Uses the same lease as a reconcile pass, so the
-- two never overlap on a row. No row back = nothing to do now.
UPDATE public.fly_preview_apps
SET lease_owner = $2,
    lease_expires_at = now() + make_interval(secs => $3)
WHERE id = $1
  AND (lease_expires_at IS NULL OR lease_expires_at < now())
  AND revision IS NOT NULL
  AND revision IS DISTINCT FROM served_revision
  AND status = $4
  AND desired_state = $5
  AND generation = observed_generation
  AND machine_state = $6
  AND fly_machine_id IS NOT NULL
  AND {by_controller}
RETURNING id, fly_app_name, fly_machine_id, revision
