-- write_status: the fenced status write. Lands only while replica $2 holds a live lease on
-- row $1 and the row is still at generation $3 (the one that was planned).
-- $4 status, $5 status_reason, $6 error_message, $7 preview_url (NULL keeps it),
-- $8 fly_machine_id, $9 machine_state, $10 observed_generation (NULL keeps it), $11 attempts,
-- $12 next_attempt_at (NULL = wait for a change), $13 release the lease, $14 status_detail
WITH prev AS (
    SELECT status FROM public.fly_preview_apps WHERE id = $1
)
UPDATE public.fly_preview_apps
SET last_transition_at = CASE WHEN status IS DISTINCT FROM $4 THEN now() ELSE last_transition_at END,
    status = $4,
    status_reason = $5,
    error_message = $6,
    status_detail = $14,
    preview_url = coalesce($7, preview_url),
    fly_machine_id = $8,
    machine_state = $9,
    observed_generation = coalesce($10, observed_generation),
    attempts = $11,
    next_attempt_at = coalesce($12, 'infinity'::timestamptz),
    lease_owner = CASE WHEN $13 THEN NULL ELSE lease_owner END,
    lease_expires_at = CASE WHEN $13 THEN NULL ELSE lease_expires_at END
WHERE id = $1
  AND lease_owner = $2
  AND lease_expires_at > now()
  AND generation = $3
  AND {by_controller}
RETURNING (SELECT status FROM prev) AS previous_status, requested_at
