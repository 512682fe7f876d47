-- try_lead: take or renew leadership for replica $1 for $2 seconds; a row back = leader.
INSERT INTO fly_preview_controller.leader AS l (id, holder, expires_at)
VALUES (1, $1, now() + make_interval(secs => $2))
ON CONFLICT (id) DO UPDATE
SET holder = excluded.holder,
    expires_at = excluded.expires_at
WHERE l.holder = excluded.holder
   OR l.expires_at < now()
RETURNING holder
