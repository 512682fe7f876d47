-- mark_reason_due: make every row waiting with status_reason $1 due now (Fly healed).
UPDATE public.fly_preview_apps
SET next_attempt_at = now()
WHERE status_reason = $1
  AND next_attempt_at > now()
  AND isfinite(next_attempt_at)
  AND {by_controller}
