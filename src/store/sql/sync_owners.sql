-- sync_owners: the owner (user_id) of each of the rows $1 that still exists, for the sync
-- lane's per-user bound (primary-key lookups).
SELECT id, user_id
FROM public.fly_preview_apps
WHERE id = ANY($1)
