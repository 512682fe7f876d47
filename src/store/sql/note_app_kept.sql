-- note_app_kept: a deleted row's app named $1 was kept because a row of that name exists
-- again: that row now has an app (its own delete must tear it down).
UPDATE public.fly_preview_apps
SET fly_app_created = true
WHERE fly_app_name = $1
  AND NOT fly_app_created
  AND {by_controller}
