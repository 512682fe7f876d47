-- note_app_created: row $1 (leased by replica $2) may have a Fly app from now on: written
-- before the first call that can create one. No row back = the lease is lost (make no call).
UPDATE public.fly_preview_apps
SET fly_app_created = true
WHERE id = $1
  AND lease_owner = $2
  AND lease_expires_at > now()
  AND {by_controller}
RETURNING id
