-- tombstones/claim: lease up to $2 due, unleased tombstones to replica $1 for $3 seconds,
-- oldest due first. Rows locked by a concurrent claimer are skipped, and the due and lease
-- conditions are evaluated under the row lock, so a tombstone is leased to one replica.
-- $1 owner, $2 limit, $3 lease seconds
WITH picked AS (
    SELECT id
    FROM fly_preview_controller.tombstones
    WHERE next_attempt_at <= now()
      AND (lease_expires_at IS NULL OR lease_expires_at < now())
    ORDER BY next_attempt_at, id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE fly_preview_controller.tombstones t
SET lease_owner = $1,
    lease_expires_at = now() + make_interval(secs => $3)
FROM picked
WHERE t.id = picked.id
RETURNING t.id, t.user_id, t.fly_app_name, t.deleted_at, t.attempts, t.next_attempt_at,
          t.lease_owner, t.lease_expires_at, t.last_error
