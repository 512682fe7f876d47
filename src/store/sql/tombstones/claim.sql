-- tombstones/claim: lease up to $2 due, unleased tombstones to replica $1 for $3 seconds,
-- fair across users: among the oldest 5,000 due tombstones (one index range scan), each user's
-- are ranked by due time and every user's first goes before anyone's second, so one user's
-- bulk delete does not hold back another user's; then oldest due first. Rows locked by a
-- concurrent claimer are skipped, and the due and lease conditions are evaluated again under
-- the row lock, so a tombstone is leased to one replica.
-- $1 owner, $2 limit, $3 lease seconds
WITH due AS (
    SELECT id, user_id, next_attempt_at
    FROM fly_preview_controller.tombstones
    WHERE next_attempt_at <= now()
      AND (lease_expires_at IS NULL OR lease_expires_at < now())
    ORDER BY next_attempt_at, id
    LIMIT 5000
),
picked AS (
    SELECT id
    FROM (
        SELECT id,
               next_attempt_at,
               row_number() OVER (PARTITION BY user_id ORDER BY next_attempt_at, id) AS turn
        FROM due
    ) ranked
    ORDER BY turn, next_attempt_at, id
    LIMIT $2
),
locked AS (
    SELECT id
    FROM fly_preview_controller.tombstones
    WHERE id IN (SELECT id FROM picked)
      AND next_attempt_at <= now()
      AND (lease_expires_at IS NULL OR lease_expires_at < now())
    FOR UPDATE SKIP LOCKED
)
UPDATE fly_preview_controller.tombstones t
SET lease_owner = $1,
    lease_expires_at = now() + make_interval(secs => $3)
FROM locked
WHERE t.id = locked.id
RETURNING t.id, t.user_id, t.fly_app_name, t.deleted_at, t.attempts, t.next_attempt_at,
          t.lease_owner, t.lease_expires_at, t.last_error
