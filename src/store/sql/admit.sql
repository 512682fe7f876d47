-- admit: row $1 (held by replica $2, still at generation $3) takes a slot: it shows
-- status $4 ('initializing'), reason $5 ('Deploying') before the first change on Fly.
UPDATE public.fly_preview_apps
SET last_transition_at = CASE WHEN status IS DISTINCT FROM $4 THEN now() ELSE last_transition_at END,
    status = $4,
    status_reason = $5,
    error_message = NULL
WHERE id = $1
  AND lease_owner = $2
  AND lease_expires_at > now()
  AND generation = $3
  AND {by_controller}
RETURNING id
