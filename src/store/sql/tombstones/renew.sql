-- tombstones/renew: extend the leases replica $2 still holds on tombstones $1 by $3 seconds.
UPDATE fly_preview_controller.tombstones
SET lease_expires_at = now() + make_interval(secs => $3)
WHERE id = ANY($1)
  AND lease_owner = $2
  AND lease_expires_at > now()
RETURNING id
