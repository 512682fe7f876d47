-- tombstones/wake: Fly answers again after an outage: every waiting, unleased tombstone is due
-- now (those the outage parked, and any in backoff: one more attempt each, paced by the
-- client's app-delete limit).
UPDATE fly_preview_controller.tombstones
SET next_attempt_at = now()
WHERE next_attempt_at > now()
  AND (lease_expires_at IS NULL OR lease_expires_at < now())
