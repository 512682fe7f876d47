-- lock_user: serialise quota decisions for user $1 until the transaction ends (the same key
-- as the quota-wake trigger of migration 20261127000200).
SELECT pg_catalog.pg_advisory_xact_lock(1718646126, pg_catalog.hashtext($1::text))
