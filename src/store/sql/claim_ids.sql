-- claim_ids: lease the rows $2 that are still due and unleased to replica $1 for $3 seconds.
WITH due AS (
    SELECT id
    FROM public.fly_preview_apps
    WHERE id = ANY($2)
      AND next_attempt_at <= now()
      AND (lease_expires_at IS NULL OR lease_expires_at < now())
    FOR UPDATE SKIP LOCKED
)
UPDATE public.fly_preview_apps
SET lease_owner = $1,
    lease_expires_at = now() + make_interval(secs => $3)
WHERE id IN (SELECT id FROM due)
  AND {by_controller}
RETURNING {row_cols}
