-- note_change: count generation $3 of row $1 (held by replica $2) against its redeploy
-- budget, in a window of $4 seconds that starts with the first change counted in it.
UPDATE public.fly_preview_apps
SET redeploys = CASE WHEN redeploy_window_start > now() - make_interval(secs => $4)
                     THEN redeploys + 1 ELSE 1 END,
    redeploy_window_start = CASE WHEN redeploy_window_start > now() - make_interval(secs => $4)
                                 THEN redeploy_window_start ELSE now() END,
    redeploy_generation = $3
WHERE id = $1
  AND lease_owner = $2
  AND generation = $3
  AND redeploy_generation < $3
  AND {by_controller}
