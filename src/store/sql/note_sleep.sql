-- note_sleep: record on a settled running preview what Fly did to its machine between passes,
-- as drift saw it: autostop suspended (or stopped) it, or Fly's proxy (or a wake) started it
-- again. Only the machine state and the Ready/Idle reason change (no due time, no NOTIFY, no
-- event): the row shows what the preview costs now (the cost gauges read machine_state).
-- $1 app names, $2 machine ids, $3 machine states (one entry per machine seen, as mark_due),
-- $4 'running' (status and desired state), $5 the states recorded here ('started' and those
-- autostop leaves a machine in: 'suspended', and 'stopped' where autostop stops), $6
-- 'started', $7 the reason for a started machine ('Ready'), $8 for a sleeping
-- one ('Idle'). A leased row is left to the pass that holds it.
UPDATE public.fly_preview_apps AS r
SET machine_state = seen.state,
    status_reason = CASE WHEN seen.state = $6 THEN $7 ELSE $8 END
FROM unnest($1::text[], $2::text[], $3::text[]) AS seen(app, machine_id, state)
WHERE seen.app = r.fly_app_name
  AND seen.machine_id = r.fly_machine_id
  AND seen.state = ANY($5)
  AND seen.state IS DISTINCT FROM r.machine_state
  AND r.status = $4
  AND r.desired_state = $4
  AND r.observed_generation = r.generation
  AND r.status_reason IN ($7, $8)
  AND (r.lease_expires_at IS NULL OR r.lease_expires_at < now())
  AND {by_controller}
