-- leader_lock: waits (without limit) until this session holds the leadership lock $1.
SELECT pg_catalog.pg_advisory_lock($1)
