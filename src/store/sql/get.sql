-- get: one row by id.
SELECT {row_cols}
FROM public.fly_preview_apps
WHERE id = $1
