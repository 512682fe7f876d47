-- drift_rows: what the full verification compares with Fly, one small tuple per row (not the
-- whole row: the leader holds every row's tuple at once). $1 the 'running' desired state,
-- $2 the 'running' status: `running` = the row runs and says so.
SELECT fly_app_name,
       fly_machine_id,
       machine_state,
       (desired_state = $1 AND status = $2) AS running
FROM public.fly_preview_apps
