-- resign: step down (shutdown) so another replica can lead at once.
DELETE FROM fly_preview_controller.leader
WHERE holder = $1
