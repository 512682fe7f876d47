-- resign: step down (shutdown) so another replica can lead at once.
DELETE FROM public.fly_preview_controller_leader
WHERE holder = $1
