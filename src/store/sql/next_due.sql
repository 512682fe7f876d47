-- next_due: seconds until the earliest row this replica may claim is due (negative: overdue;
-- NULL: none). Two probes, the earlier wins: the first unleased row on fly_preview_apps_due_idx
-- (converged rows, 'infinity', are outside the range), and the earliest moment a leased row
-- becomes claimable, its lease's expiry (or its due time, if later) — so a replica that
-- crashed holding rows wakes the others when its leases run out, with no polling; only the
-- rows in flight are read (fly_preview_apps_leased_idx holds just the leased rows).
SELECT extract(epoch FROM least(
    (SELECT next_attempt_at
     FROM public.fly_preview_apps
     WHERE next_attempt_at < 'infinity'::timestamptz
       AND (lease_expires_at IS NULL OR lease_expires_at < now())
     ORDER BY next_attempt_at
     LIMIT 1),
    (SELECT min(greatest(lease_expires_at, next_attempt_at))
     FROM public.fly_preview_apps
     WHERE lease_owner IS NOT NULL
       AND lease_expires_at >= now()
       AND next_attempt_at < 'infinity'::timestamptz)
) - now())::float8
