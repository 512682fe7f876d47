-- mark_due: make rows due now because drift saw their machine on Fly in a state that matters
-- to them, compared with what the row last recorded (so the same sighting never requeues a
-- row twice, and a converged fleet is left alone), and wake the schedulers (which sleep until
-- the earliest due row they know of).
-- $1 app names, $2 machine ids, $3 machine states: one entry per machine seen; a NULL id and
-- state mean the app, or every machine of ours in it, is gone. $4 the 'running' desired
-- state, $5 'stopped' and $6 'error' statuses, $7 the states a running preview is repaired
-- from, $8 the 'started' state, $9 the error reasons about the machine itself, $10 the error
-- reason of a configuration Fly refused.
-- A row that should run, is not due already, and whose recorded machine (if any) is the one
-- seen, in a state other than the one it recorded, is made due when:
--  * it is in error for a reason of $9 (the machine exited or never became healthy; it waits
--    for a change, or for its idle expiry): the machine started again (it may have recovered);
--  * it is stopped, or waits for a change in error for any other reason (an invalid spec, a
--    name owned elsewhere, a configuration Fly refused, due at its idle expiry): never, only a change to the row
--    (or the expiry) brings it back;
--  * otherwise (running, deploying, retrying): the machine is in a state of $7, or gone.
-- The rows are found by app name (the unique index, one probe per sighting), so the cost is
-- that of the sightings, never of the rows drift did not see (parked, stopped).
UPDATE public.fly_preview_apps AS r
SET next_attempt_at = now()
WHERE r.fly_app_name = ANY($1::text[])
  AND r.next_attempt_at > now()
  AND r.desired_state = $4
  AND EXISTS (
      SELECT 1
      FROM unnest($1::text[], $2::text[], $3::text[]) AS seen(app, machine_id, state)
      WHERE seen.app = r.fly_app_name
        AND (seen.machine_id IS NULL OR r.fly_machine_id IS NULL
             OR seen.machine_id = r.fly_machine_id)
        AND seen.state IS DISTINCT FROM r.machine_state
        AND CASE
                WHEN r.status = $5 THEN false
                WHEN r.status = $6 AND r.status_reason = ANY($9) THEN seen.state = $8
                WHEN r.status = $6
                     AND (NOT isfinite(r.next_attempt_at) OR r.status_reason = $10) THEN false
                ELSE seen.state IS NULL OR seen.state = ANY($7)
            END
  )
  AND {by_controller}
RETURNING pg_catalog.pg_notify('fly_preview_apps',
    pg_catalog.json_build_object('op', 'update', 'id', r.id)::text)
