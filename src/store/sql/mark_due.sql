-- mark_due: make the rows with app names $1 that should run ($2 = 'running') due now
-- (drift found a change on Fly).
UPDATE public.fly_preview_apps
SET next_attempt_at = now()
WHERE fly_app_name = ANY($1)
  AND next_attempt_at > now()
  AND desired_state = $2
  AND {by_controller}
