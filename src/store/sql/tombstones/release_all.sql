-- tombstones/release_all: give back every tombstone replica $1 holds (shutdown).
UPDATE fly_preview_controller.tombstones
SET lease_owner = NULL,
    lease_expires_at = NULL
WHERE lease_owner = $1
