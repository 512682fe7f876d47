-- release: give row $1 back without changing it (replica $2 must hold its lease).
UPDATE public.fly_preview_apps
SET lease_owner = NULL,
    lease_expires_at = NULL
WHERE id = $1
  AND lease_owner = $2
  AND {by_controller}
