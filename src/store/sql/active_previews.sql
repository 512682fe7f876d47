-- active_previews: user $1's previews that want to run and hold a slot, leaving out row $2.
-- Holding a slot: desired_state $3 ('running'), not refused by the quota (status_reason $7
-- 'QuotaExceeded'), and admitted (status $4 'initializing', $5 'running' or $6 'error') or
-- redeploying a machine it has (status $8 'pending' with a machine): a running preview keeps
-- its slot through its own redeploy. The quota-wake triggers (migration 20261207000100) use
-- the same definition. Reads at most the user's rows (capped by the settings' row cap).
SELECT count(*)
FROM public.fly_preview_apps
WHERE user_id = $1
  AND id IS DISTINCT FROM $2
  AND desired_state = $3
  AND status_reason IS DISTINCT FROM $7
  AND (status IN ($4, $5, $6) OR (status = $8 AND fly_machine_id IS NOT NULL))
