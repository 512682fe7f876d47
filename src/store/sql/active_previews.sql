-- active_previews: user $1's previews that want to run and hold a slot, leaving out row $2.
-- Holding a slot: desired_state $3 ('running'), admitted (status $4 'initializing', $5
-- 'running' or $6 'error') and not refused by the quota (status_reason $7 'QuotaExceeded').
SELECT count(*)
FROM public.fly_preview_apps
WHERE user_id = $1
  AND id IS DISTINCT FROM $2
  AND desired_state = $3
  AND status IN ($4, $5, $6)
  AND status_reason IS DISTINCT FROM $7
