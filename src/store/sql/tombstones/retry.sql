-- tombstones/retry: a failed teardown attempt. Due again at $4 with the failure $5 (for
-- operators), attempts + $3 (1 counts towards the backoff, 0 does not: a Fly outage), the
-- lease given back. Fenced: replica $2 must hold the lease on tombstone $1.
UPDATE fly_preview_controller.tombstones
SET attempts = attempts + $3,
    next_attempt_at = $4,
    last_error = $5,
    lease_owner = NULL,
    lease_expires_at = NULL
WHERE id = $1
  AND lease_owner = $2
