-- list_all: every row, oldest first (status command, sweeps).
SELECT {row_cols}
FROM public.fly_preview_apps
ORDER BY created_at, id
