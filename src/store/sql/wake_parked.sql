-- wake_parked: Fly answers again. Every row parked by the outage (status_reason $1) is due
-- now, and its deploy clock (requested_at) restarts: the outage does not count against the
-- initializing deadline (nor in time-to-running).
UPDATE public.fly_preview_apps
SET next_attempt_at = now(),
    requested_at = now()
WHERE status_reason = $1
  AND isfinite(next_attempt_at)
  AND {by_controller}
