-- release_all: give back every lease replica $1 holds (shutdown).
UPDATE public.fly_preview_apps
SET lease_owner = NULL,
    lease_expires_at = NULL
WHERE lease_owner = $1
  AND {by_controller}
