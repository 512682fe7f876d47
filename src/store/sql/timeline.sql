-- timeline: the latest $2 events of the preview named $1 (a row, or a deleted row whose
-- teardown is not finished), newest first (reads fly_preview_events_preview_idx).
SELECT e.at, e.kind, e.reason, e.message, e.detail, e.elapsed_ms
FROM public.fly_preview_events AS e
WHERE e.preview_id IN (
    SELECT a.id FROM public.fly_preview_apps AS a WHERE a.fly_app_name = $1
    UNION ALL
    SELECT t.id FROM fly_preview_controller.tombstones AS t WHERE t.fly_app_name = $1
)
ORDER BY e.id DESC
LIMIT $2
