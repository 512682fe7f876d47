-- tombstones/next_due: seconds until the earliest tombstone may be claimed (negative: overdue;
-- NULL: no tombstone). A leased one may be claimed when its lease expires (its replica
-- crashed), so that counts as its due time too.
SELECT extract(epoch FROM min(greatest(next_attempt_at,
                                       coalesce(lease_expires_at, next_attempt_at))) - now())::float8
FROM fly_preview_controller.tombstones
