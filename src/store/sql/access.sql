-- access: what the connected role lacks to see and write every row `run` needs, one row per
-- problem (role, table, kind, what) with kind 'schema' | 'privilege' | 'rls' | 'restrictive';
-- no rows = fine. Tables that do not exist are skipped.
-- A role sees every row if it is superuser or BYPASSRLS, owns the table (without FORCE ROW
-- LEVEL SECURITY), or holds a permissive policy with USING (true) (and WITH CHECK true or
-- absent) for the command, and no restrictive policy applies to it.
WITH me AS (
    SELECT r.rolname::text AS rolname, r.rolsuper OR r.rolbypassrls AS bypass
    FROM pg_catalog.pg_roles r
    WHERE r.rolname = current_user
),
need (nsp, rel, privs, cmds) AS (
    VALUES ('public', 'fly_preview_apps', array['SELECT', 'UPDATE'], array['r', 'w']),
           ('fly_preview_controller', 'leader', array['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
            array['r', 'a', 'w', 'd']),
           ('fly_preview_controller', 'tombstones', array['SELECT', 'UPDATE', 'DELETE'],
            array['r', 'w', 'd']),
           ('fly_preview_controller', '_sqlx_migrations', array['SELECT'], array['r']),
           ('fly_preview_controller', 'settings', array['SELECT'], array['r'])
),
-- looked up by name in the catalog (to_regclass would fail on a schema without USAGE)
t AS (
    SELECT n.nsp || '.' || n.rel AS tbl, n.privs, n.cmds, c.oid, c.relrowsecurity,
           c.relforcerowsecurity,
           pg_catalog.pg_has_role(current_user, c.relowner, 'USAGE') AS owner
    FROM need n
    JOIN pg_catalog.pg_namespace s ON s.nspname = n.nsp
    JOIN pg_catalog.pg_class c ON c.relnamespace = s.oid AND c.relname = n.rel
),
applies AS (
    SELECT p.*, p.polrelid AS rel
    FROM pg_catalog.pg_policy p
    WHERE p.polroles = '{0}'
       OR EXISTS (SELECT 1 FROM unnest(p.polroles) r
                  WHERE r <> 0 AND pg_catalog.pg_has_role(current_user, r, 'USAGE'))
),
rls AS (
    SELECT t.*, cmd,
           CASE cmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'
                    ELSE 'DELETE' END AS cmd_name
    FROM t, me, unnest(t.cmds) AS cmd
    WHERE t.relrowsecurity AND NOT me.bypass AND NOT (t.owner AND NOT t.relforcerowsecurity)
)
SELECT me.rolname, 'schema fly_preview_controller', 'schema', 'USAGE'
FROM me
WHERE pg_catalog.to_regnamespace('fly_preview_controller') IS NOT NULL
  AND NOT pg_catalog.has_schema_privilege(current_user, 'fly_preview_controller', 'USAGE')
UNION ALL
SELECT me.rolname, t.tbl, 'privilege', p
FROM t, me, unnest(t.privs) AS p
WHERE NOT pg_catalog.has_table_privilege(current_user, t.oid, p)
UNION ALL
SELECT me.rolname, 'function public.fly_preview_apps_by_controller()', 'privilege', 'EXECUTE'
FROM me
WHERE pg_catalog.to_regprocedure('public.fly_preview_apps_by_controller()') IS NOT NULL
  AND NOT pg_catalog.has_function_privilege(current_user,
        'public.fly_preview_apps_by_controller()', 'EXECUTE')
UNION ALL
SELECT me.rolname, 'function fly_preview_controller.status_counts()', 'privilege', 'EXECUTE'
FROM me
-- (looked up only with USAGE on the schema: without it the missing USAGE is the problem)
WHERE CASE WHEN pg_catalog.to_regnamespace('fly_preview_controller') IS NOT NULL
            AND pg_catalog.has_schema_privilege(current_user, 'fly_preview_controller', 'USAGE')
           THEN pg_catalog.to_regprocedure('fly_preview_controller.status_counts()') IS NOT NULL
            AND NOT pg_catalog.has_function_privilege(current_user,
                  'fly_preview_controller.status_counts()', 'EXECUTE')
           ELSE false END
UNION ALL
SELECT me.rolname, rls.tbl, 'rls', rls.cmd_name
FROM rls, me
WHERE NOT EXISTS (
    SELECT 1 FROM applies p
    WHERE p.rel = rls.oid AND p.polpermissive AND p.polcmd IN ('*', rls.cmd)
      AND pg_catalog.pg_get_expr(coalesce(CASE WHEN rls.cmd = 'a' THEN p.polwithcheck END,
                                          p.polqual), p.polrelid) = 'true'
      AND (rls.cmd NOT IN ('a', 'w') OR p.polwithcheck IS NULL
           OR pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid) = 'true'))
UNION ALL
SELECT me.rolname, rls.tbl, 'restrictive', p.polname || ' limits ' || rls.cmd_name
FROM rls, me, applies p
WHERE p.rel = rls.oid AND NOT p.polpermissive AND p.polcmd IN ('*', rls.cmd)
  AND coalesce(pg_catalog.pg_get_expr(p.polqual, p.polrelid), 'true') <> 'true'
ORDER BY 2, 3, 4
