-- drift_rows: what the full verification compares with Fly, one small tuple per row (not the
-- whole row), streamed. $1 the 'running' desired state, $2 the 'running' status: `running` =
-- the row runs and says so. $3 when the verification began listing Fly: `settled` = nothing
-- but a lease changed on the row since (its recorded machine is older than the listing).
SELECT fly_app_name,
       fly_machine_id,
       machine_state,
       (desired_state = $1 AND status = $2) AS running,
       (updated_at < $3) AS settled
FROM public.fly_preview_apps
