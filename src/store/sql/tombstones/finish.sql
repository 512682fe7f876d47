-- tombstones/finish: the teardown is over; the tombstone goes. Fenced: replica $2 must hold
-- the lease on tombstone $1, and the row must not have been deleted again since the claim
-- ($3, the claimed deleted_at).
DELETE FROM fly_preview_controller.tombstones
WHERE id = $1
  AND lease_owner = $2
  AND deleted_at = $3
