-- active_previews: the slots user $1 holds, leaving out row $2: one per row or tombstone for
-- which a machine may be alive (the quota bounds live machines, not rows):
--  * rows wanting to run ($3 'running'), not refused by the quota (status_reason $7
--    'QuotaExceeded'), admitted (status $4 'initializing', $5 'running' or $6 'error') or
--    redeploying a machine they have (status $8 'pending' with a machine): a running preview
--    keeps its slot through its own redeploy;
--  * rows being torn down that still have their machine (desired_state $9 'stopped');
--  * tombstones of deleted rows that had a machine, until their teardown is done.
-- The quota-wake triggers (migration 20261207000100) free a slot by the same definition.
-- Reads at most the user's rows (capped by the settings' row cap) and their tombstones.
SELECT (SELECT count(*)
        FROM public.fly_preview_apps
        WHERE user_id = $1
          AND id IS DISTINCT FROM $2
          AND ((desired_state = $3
                AND status_reason IS DISTINCT FROM $7
                AND (status IN ($4, $5, $6) OR (status = $8 AND fly_machine_id IS NOT NULL)))
               OR (desired_state = $9 AND fly_machine_id IS NOT NULL)))
     + (SELECT count(*)
        FROM fly_preview_controller.tombstones
        WHERE user_id = $1 AND held_slot)
