-- due_unleased: up to $1 due, unleased rows, oldest first, without claiming them (the local
-- lane picks those whose pass needs no Fly call).
SELECT {row_cols}
FROM public.fly_preview_apps
WHERE next_attempt_at <= now()
  AND (lease_expires_at IS NULL OR lease_expires_at < now())
ORDER BY next_attempt_at
LIMIT $1
