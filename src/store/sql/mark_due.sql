-- mark_due: make the rows with app names $1 that should run ($2 = 'running') due now
-- (drift found a change on Fly), and wake the schedulers (which sleep until the earliest due
-- row they know of).
UPDATE public.fly_preview_apps
SET next_attempt_at = now()
WHERE fly_app_name = ANY($1)
  AND next_attempt_at > now()
  AND desired_state = $2
  AND {by_controller}
RETURNING pg_catalog.pg_notify('fly_preview_apps',
    pg_catalog.json_build_object('op', 'update', 'id', id)::text)
