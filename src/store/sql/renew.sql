-- renew: extend the leases replica $2 still holds on rows $1 by $3 seconds.
UPDATE public.fly_preview_apps
SET lease_expires_at = now() + make_interval(secs => $3)
WHERE id = ANY($1)
  AND lease_owner = $2
  AND lease_expires_at > now()
  AND {by_controller}
RETURNING id
