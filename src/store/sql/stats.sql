-- stats: queue figures for the metrics in one statement. $1 = the 'error' status, $2 = the
-- error reasons that wait for a change (or the row's idle expiry), not for a retry.
-- Reads no row that waits for a change (due `infinity`: parked, stopped, settled): the due
-- figures and the backoff count are ranges of fly_preview_apps_due_idx below `infinity`, and
-- rows by status come from the counts the table's triggers keep
-- (fly_preview_controller.status_counts(), migration 20261209002100).
WITH due AS (
    SELECT next_attempt_at
    FROM public.fly_preview_apps
    WHERE next_attempt_at <= now()
      AND (lease_expires_at IS NULL OR lease_expires_at < now())
),
by_status AS (
    SELECT status, n FROM fly_preview_controller.status_counts()
)
SELECT
    (SELECT count(*) FROM due) AS due,
    coalesce((SELECT extract(epoch FROM now() - min(next_attempt_at)) FROM due), 0)::float8
        AS oldest_due_seconds,
    (SELECT count(*) FROM public.fly_preview_apps
      WHERE status = $1 AND next_attempt_at > now()
        AND next_attempt_at < 'infinity'::timestamptz
        AND coalesce(status_reason, '') <> ALL ($2)) AS in_backoff,
    coalesce((SELECT array_agg(status ORDER BY status) FROM by_status), '{}') AS statuses,
    coalesce((SELECT array_agg(n ORDER BY status) FROM by_status), '{}') AS counts
