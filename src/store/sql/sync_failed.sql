-- sync_failed: a sync of row $1 (leased by replica $2) for revision $3 did not confirm it:
-- status_reason $4, error_message $5 and status_detail $7, only while the row is still running
-- ($6) and still asks for $3 (a newer save will be tried instead). The status is never
-- changed. Gives the lease back either way.
UPDATE public.fly_preview_apps
SET status_reason = CASE WHEN status = $6 AND revision = $3 THEN $4 ELSE status_reason END,
    error_message = CASE WHEN status = $6 AND revision = $3 THEN $5 ELSE error_message END,
    status_detail = CASE WHEN status = $6 AND revision = $3 THEN $7 ELSE status_detail END,
    lease_owner = NULL,
    lease_expires_at = NULL
WHERE id = $1
  AND lease_owner = $2
  AND lease_expires_at > now()
  AND {by_controller}
