-- sync_candidates: up to $3 unleased running ($1) rows with a started ($2) machine whose
-- `revision` is not confirmed yet (reads the partial index fly_preview_apps_sync_pending_idx).
SELECT id
FROM public.fly_preview_apps
WHERE revision IS DISTINCT FROM served_revision
  AND revision IS NOT NULL
  AND status = $1
  AND machine_state = $2
  AND generation = observed_generation
  AND (lease_expires_at IS NULL OR lease_expires_at < now())
ORDER BY updated_at
LIMIT $3
