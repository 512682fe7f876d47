-- leader_unlock: replica $1 steps down: its leader row goes and this session releases lock $2.
WITH gone AS (
    DELETE FROM fly_preview_controller.leader WHERE holder = $1
)
SELECT pg_catalog.pg_advisory_unlock($2)
