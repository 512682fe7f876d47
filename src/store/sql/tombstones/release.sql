-- tombstones/release: give tombstone $1 back unchanged (replica $2 must hold its lease).
UPDATE fly_preview_controller.tombstones
SET lease_owner = NULL,
    lease_expires_at = NULL
WHERE id = $1
  AND lease_owner = $2
