-- active_previews: the slots user $1 holds, leaving out row $2: one per row or tombstone for
-- which a machine may be alive (the quota bounds live machines, not rows):
--  * rows wanting to run ('running'), not refused by the quota (status_reason
--    'QuotaExceeded'), admitted (status 'initializing', 'running' or 'error') or redeploying a
--    machine they have (status 'pending' with a machine): a running preview keeps its slot
--    through its own redeploy;
--  * rows being torn down that still have their machine (desired_state 'stopped');
--  * tombstones of deleted rows that had a machine, until their teardown is done.
-- The quota-wake triggers (migration 20261207000100) free a slot by the same definition.
-- Reads only the slot-holding rows, through the partial index fly_preview_apps_slot_idx
-- (migration 20261208000300), whose predicate is written out literally below so the planner
-- can use it: a user's pending or parked rows, however many, cost nothing here. The values
-- are the wire forms of Status, DesiredState and Reason (tests/it/store_vocabulary.rs).
SELECT (SELECT count(*)
        FROM public.fly_preview_apps
        WHERE user_id = $1
          AND id IS DISTINCT FROM $2
          AND ((desired_state = 'running'
                AND status_reason IS DISTINCT FROM 'QuotaExceeded'
                AND (status IN ('initializing', 'running', 'error')
                     OR (status = 'pending' AND fly_machine_id IS NOT NULL)))
               OR (desired_state = 'stopped' AND fly_machine_id IS NOT NULL)))
     + (SELECT count(*)
        FROM fly_preview_controller.tombstones
        WHERE user_id = $1 AND held_slot)
