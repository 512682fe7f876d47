-- note_leader: while this session holds the leadership lock $3, names replica $1 as the leader
-- for $2 seconds (who leads, for people and older replicas); a row back = the lock is held.
WITH held AS (
    SELECT 1
    FROM pg_catalog.pg_locks
    WHERE locktype = 'advisory'
      AND pid = pg_catalog.pg_backend_pid()
      AND granted
      AND objsubid = 1
      AND ((classid::bigint << 32) | objid::bigint) = $3
)
INSERT INTO fly_preview_controller.leader AS l (id, holder, expires_at)
SELECT 1, $1, now() + make_interval(secs => $2)
WHERE EXISTS (SELECT 1 FROM held)
ON CONFLICT (id) DO UPDATE
SET holder = excluded.holder,
    expires_at = excluded.expires_at
RETURNING holder
