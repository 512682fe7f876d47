-- tombstones/pending: how many deleted rows still wait for their teardown.
SELECT count(*) FROM fly_preview_controller.tombstones
