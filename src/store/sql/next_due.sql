-- next_due: seconds until the earliest row this replica may claim is due (negative: overdue;
-- no row: none). Walks fly_preview_apps_due_idx from the front and stops at the first row
-- without a live lease; converged rows ('infinity') are outside the range.
SELECT extract(epoch FROM next_attempt_at - now())::float8
FROM public.fly_preview_apps
WHERE next_attempt_at < 'infinity'::timestamptz
  AND (lease_expires_at IS NULL OR lease_expires_at < now())
ORDER BY next_attempt_at
LIMIT 1
