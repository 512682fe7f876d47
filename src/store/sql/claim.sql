-- claim: lease up to $2 due, unleased rows to replica $1 for $3 seconds.
-- $1 owner, $2 limit, $3 lease seconds
WITH due AS (
    SELECT id
    FROM public.fly_preview_apps
    WHERE next_attempt_at <= now()
      AND (lease_expires_at IS NULL OR lease_expires_at < now())
    ORDER BY next_attempt_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE public.fly_preview_apps
SET lease_owner = $1,
    lease_expires_at = now() + make_interval(secs => $3)
WHERE id IN (SELECT id FROM due)
  AND {by_controller}
RETURNING {row_cols}
