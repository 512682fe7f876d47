-- stats: queue figures for the metrics in one statement. $1 = the 'error' status.
WITH r AS (
    SELECT status,
           next_attempt_at,
           next_attempt_at <= now()
             AND (lease_expires_at IS NULL OR lease_expires_at < now()) AS due
    FROM public.fly_preview_apps
),
by_status AS (
    SELECT status, count(*) AS n FROM r GROUP BY status
)
SELECT
    (SELECT count(*) FROM r WHERE due) AS due,
    coalesce((SELECT extract(epoch FROM now() - min(next_attempt_at)) FROM r WHERE due), 0)::float8
        AS oldest_due_seconds,
    (SELECT count(*) FROM r
      WHERE status = $1 AND next_attempt_at > now() AND isfinite(next_attempt_at)) AS in_backoff,
    coalesce((SELECT array_agg(status ORDER BY status) FROM by_status), '{}') AS statuses,
    coalesce((SELECT array_agg(n ORDER BY status) FROM by_status), '{}') AS counts
