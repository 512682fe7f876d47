-- wake_refused: make user $1's oldest quota-refused row (reason $2 'QuotaExceeded', desired
-- $3 'running') that is not due yet due now, and wake the schedulers.
UPDATE public.fly_preview_apps
SET next_attempt_at = now()
WHERE id = (SELECT r.id FROM public.fly_preview_apps r
            WHERE r.user_id = $1
              AND r.desired_state = $3
              AND r.status_reason = $2
              AND r.next_attempt_at > now()
            ORDER BY r.created_at, r.id
            LIMIT 1)
  AND {by_controller}
RETURNING pg_catalog.pg_notify('fly_preview_apps',
    pg_catalog.json_build_object('op', 'update', 'id', id)::text)
