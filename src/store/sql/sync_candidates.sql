-- sync_candidates: up to $1 unleased running rows with a started machine whose `revision` is
-- not confirmed yet, oldest first. The predicate is fly_preview_apps_sync_ready_idx's, written
-- out literally so the planner reads that index in order (bounded by what can sync).
SELECT id
FROM public.fly_preview_apps
WHERE revision IS DISTINCT FROM served_revision
  AND revision IS NOT NULL
  AND status = 'running'
  AND machine_state = 'started'
  AND generation = observed_generation
  AND (lease_expires_at IS NULL OR lease_expires_at < now())
ORDER BY updated_at
LIMIT $1
