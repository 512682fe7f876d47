-- write_status: the fenced status write. Lands only while replica $2 holds a live lease on
-- row $1 and the row is still at generation $3 (the one that was planned).
-- $4 status, $5 status_reason, $6 error_message, $7 preview_url (NULL keeps it),
-- $8 fly_machine_id, $9 machine_state, $10 observed_generation (NULL keeps it), $11 attempts,
-- $12 next_attempt_at (NULL = wait for a change), $13 release the lease, $14 status_detail,
-- $15 the timeline events to record with it (a JSON array of {kind, reason, message,
-- detail}; recorded only if the write lands). An event's elapsed time is measured from the
-- preview's previous event (the first of several from this write; the rest get 0).
WITH prev AS (
    SELECT status FROM public.fly_preview_apps WHERE id = $1
), upd AS (
    UPDATE public.fly_preview_apps
    SET last_transition_at = CASE WHEN status IS DISTINCT FROM $4 THEN now() ELSE last_transition_at END,
        status = $4,
        status_reason = $5,
        error_message = $6,
        status_detail = $14,
        preview_url = coalesce($7, preview_url),
        fly_machine_id = $8,
        machine_state = $9,
        observed_generation = coalesce($10, observed_generation),
        attempts = $11,
        next_attempt_at = coalesce($12, 'infinity'::timestamptz),
        lease_owner = CASE WHEN $13 THEN NULL ELSE lease_owner END,
        lease_expires_at = CASE WHEN $13 THEN NULL ELSE lease_expires_at END
    WHERE id = $1
      AND lease_owner = $2
      AND lease_expires_at > now()
      AND generation = $3
      AND {by_controller}
    RETURNING id, user_id, requested_at
), ev AS (
    INSERT INTO public.fly_preview_events (preview_id, user_id, kind, reason, message, detail, elapsed_ms)
    SELECT upd.id, upd.user_id, e.kind, e.reason, e.message, coalesce(e.detail, '{}'::jsonb),
           CASE WHEN e.n = 1
                THEN (extract(epoch FROM now() - coalesce(last.at, upd.requested_at)) * 1000)::bigint
                ELSE 0 END
    FROM upd
    CROSS JOIN LATERAL ROWS FROM (
        jsonb_to_recordset($15::jsonb) AS (kind text, reason text, message text, detail jsonb)
    ) WITH ORDINALITY AS e(kind, reason, message, detail, n)
    LEFT JOIN LATERAL (
        SELECT l.at FROM public.fly_preview_events l
        WHERE l.preview_id = upd.id ORDER BY l.id DESC LIMIT 1
    ) AS last ON true
    ORDER BY e.n
    RETURNING kind, elapsed_ms
)
SELECT (SELECT status FROM prev) AS previous_status, upd.requested_at,
       coalesce((SELECT array_agg(ev.kind) FROM ev), '{}') AS event_kinds,
       coalesce((SELECT array_agg(ev.elapsed_ms / 1000.0::float8) FROM ev), '{}') AS event_seconds
FROM upd
