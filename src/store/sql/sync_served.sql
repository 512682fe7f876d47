-- sync_served: the machine of row $1 (leased by replica $2) answered that it serves commit $3.
-- Confirms `revision` only when the answer is that commit (equal, or the full form of a short
-- sha, case-insensitive): served_revision := revision (verbatim, so the web app tests
-- `served_revision = revision`). A sync reason ($4) is replaced by $5 (Ready), and its message
-- and detail cleared. The answer is
-- compared with the row's revision *now*, so a runner that already fetched a newer save
-- confirms that one. Gives the lease back only on a hit (else sync_failed / release follow).
-- A hit records the 'sync_confirmed' event (with the revision) on the preview's timeline.
-- Returns whether it was a hit, and the row's revision now.
WITH upd AS (
    UPDATE public.fly_preview_apps
    SET served_revision = CASE WHEN m.hit THEN revision ELSE served_revision END,
        served_revision_at = CASE WHEN m.hit THEN now() ELSE served_revision_at END,
        status_reason = CASE WHEN m.hit AND status_reason = ANY($4) THEN $5 ELSE status_reason END,
        error_message = CASE WHEN m.hit AND status_reason = ANY($4) THEN NULL ELSE error_message END,
        status_detail = CASE WHEN m.hit AND status_reason = ANY($4) THEN NULL ELSE status_detail END,
        lease_owner = CASE WHEN m.hit THEN NULL ELSE lease_owner END,
        lease_expires_at = CASE WHEN m.hit THEN NULL ELSE lease_expires_at END
    FROM (
        SELECT revision IS NOT NULL AND length($3) >= 7
               AND (starts_with(lower($3), lower(revision)) OR starts_with(lower(revision), lower($3)))
               AS hit
        FROM public.fly_preview_apps WHERE id = $1
    ) AS m
    WHERE id = $1
      AND lease_owner = $2
      AND lease_expires_at > now()
      AND {by_controller}
    RETURNING id, user_id, m.hit, revision
), ev AS (
    INSERT INTO public.fly_preview_events (preview_id, user_id, kind, detail, elapsed_ms)
    SELECT upd.id, upd.user_id, 'sync_confirmed', jsonb_build_object('revision', upd.revision),
           (SELECT (extract(epoch FROM now() - l.at) * 1000)::bigint
              FROM public.fly_preview_events l
             WHERE l.preview_id = upd.id ORDER BY l.id DESC LIMIT 1)
    FROM upd
    WHERE upd.hit
)
SELECT hit, revision FROM upd
