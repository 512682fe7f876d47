-- next_started_due: seconds until the earliest unleased row of started work (priority 0 of
-- src/store/sql/claim.sql: a wake, a deploy in progress, their retries) is due (negative:
-- overdue; NULL: none), read from the claim's two windows of it (fly_preview_apps_urgent_due_idx,
-- fly_preview_apps_retry_due_idx; their predicates written out literally).
SELECT extract(epoch FROM least(
    (SELECT next_attempt_at
     FROM public.fly_preview_apps
     WHERE next_attempt_at < 'infinity'::timestamptz
       AND attempts = 0
       AND ((status = 'initializing' AND observed_generation = generation) OR status_reason = 'WakeRequested')
       AND (lease_expires_at IS NULL OR lease_expires_at < now())
     ORDER BY next_attempt_at
     LIMIT 1),
    (SELECT next_attempt_at
     FROM public.fly_preview_apps
     WHERE next_attempt_at < 'infinity'::timestamptz
       AND attempts > 0 AND (observed_generation < generation OR status = 'initializing')
       AND status = 'initializing'
       AND (lease_expires_at IS NULL OR lease_expires_at < now())
     ORDER BY next_attempt_at
     LIMIT 1)
) - now())::float8
