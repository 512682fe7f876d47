-- Supabase's database linter (splinter, github.com/supabase/splinter, lints/*.sql) checks that
-- apply to what the controller creates, written here from their descriptions and limited to
-- the controller's objects: the schemas public and fly_preview_controller, minus extension
-- members. One row per finding: (lint, level, object, detail). Lint names are splinter's.
-- The schemas PostgREST exposes: pgrst.db_schemas if set, else its defaults.
WITH exposed AS (
    SELECT trim(s) AS nspname
    FROM unnest(string_to_array(coalesce(nullif(current_setting('pgrst.db_schemas', true), ''),
                                         'public,graphql_public'), ',')) AS s
),
ours AS (
    SELECT c.oid, n.nspname, c.relname, c.relrowsecurity, n.nspname || '.' || c.relname AS obj
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
      AND n.nspname IN ('public', 'fly_preview_controller')
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')
),
pol AS (
    SELECT p.*, o.obj, o.relrowsecurity, o.nspname,
           lower(coalesce(pg_get_expr(p.polqual, p.polrelid), '')) AS qual,
           lower(coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '')) AS chk,
           array(SELECT CASE WHEN r = 0 THEN 'public' ELSE r::regrole::text END
                 FROM unnest(p.polroles) r) AS roles
    FROM pg_policy p
    JOIN ours o ON o.oid = p.polrelid
),
funcs AS (
    SELECT p.oid, n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')' AS obj,
           p.prosecdef, p.proconfig, n.nspname
    FROM pg_proc p
    JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname IN ('public', 'fly_preview_controller')
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
)
-- 0013: a table the Data API exposes without row-level security
SELECT 'rls_disabled_in_public' AS lint, 'ERROR' AS level, o.obj, 'RLS disabled, reachable by anon/authenticated' AS detail
FROM ours o JOIN exposed e ON e.nspname = o.nspname
WHERE NOT o.relrowsecurity
  AND (has_table_privilege('anon', o.oid, 'SELECT') OR has_table_privilege('authenticated', o.oid, 'SELECT'))
UNION ALL
-- 0007: policies exist but RLS is off
SELECT DISTINCT 'policy_exists_rls_disabled', 'ERROR', obj, 'policies exist, RLS disabled'
FROM pol WHERE NOT relrowsecurity
UNION ALL
-- 0008: RLS on, no policy (INFO: nobody but the owner and BYPASSRLS roles gets rows)
SELECT 'rls_enabled_no_policy', 'INFO', o.obj, 'RLS enabled, no policy'
FROM ours o
WHERE o.relrowsecurity AND NOT EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = o.oid)
UNION ALL
-- 0003: auth.uid()/auth.jwt()/current_setting() re-evaluated per row instead of once (InitPlan)
SELECT 'auth_rls_initplan', 'WARN', obj, 'policy ' || polname || ' calls auth functions per row'
FROM pol
WHERE (qual || ' ' || chk) ~ '(auth\.(uid|jwt|role|email)\(\)|current_setting\()'
  AND (qual || ' ' || chk) !~ 'select (auth\.(uid|jwt|role|email)\(\)|current_setting\()'
UNION ALL
-- 0006: several permissive policies for the same role and command
SELECT 'multiple_permissive_policies', 'WARN', obj,
       'role ' || role || ' has ' || count(*) || ' permissive ' || cmd || ' policies'
FROM (
    SELECT obj, polname, role, c AS cmd
    FROM pol, unnest(roles) AS role,
         unnest(CASE polcmd WHEN '*' THEN array['r', 'a', 'w', 'd'] ELSE array[polcmd::text] END) AS c
    WHERE polpermissive
) x
WHERE role IN ('anon', 'authenticated', 'authenticator', 'dashboard_user', 'public')
GROUP BY obj, role, cmd HAVING count(*) > 1
UNION ALL
-- 0024: permissive policies that let anon/authenticated write anything
SELECT 'rls_policy_always_true', 'WARN', obj, 'policy ' || polname || ' is always true'
FROM pol
WHERE polpermissive AND roles && array['public', 'anon', 'authenticated']
  AND ((polcmd IN ('w', 'd', '*') AND qual IN ('', 'true'))
       OR (polcmd IN ('a', 'w', '*') AND chk = 'true'))
UNION ALL
-- 0011: a function with a mutable search_path
SELECT 'function_search_path_mutable', 'WARN', obj, 'search_path not set'
FROM funcs
WHERE NOT EXISTS (SELECT 1 FROM unnest(coalesce(proconfig, '{}')) c WHERE c LIKE 'search_path=%')
UNION ALL
-- 0028/0029: SECURITY DEFINER functions anon/authenticated can execute
SELECT 'security_definer_function_executable', 'WARN', obj, 'SECURITY DEFINER, executable by anon/authenticated'
FROM funcs
WHERE prosecdef AND (has_function_privilege('anon', oid, 'EXECUTE') OR has_function_privilege('authenticated', oid, 'EXECUTE'))
UNION ALL
-- 0010: views that run with their owner's rights
SELECT 'security_definer_view', 'ERROR', o.obj, 'view without security_invoker'
FROM ours o JOIN pg_class c ON c.oid = o.oid
WHERE c.relkind = 'v' AND NOT coalesce('security_invoker=true' = ANY (c.reloptions), false)
UNION ALL
-- 0026: anon can read a table through the Data API / pg_graphql
SELECT 'pg_graphql_anon_table_exposed', 'WARN', o.obj, 'anon has SELECT'
FROM ours o JOIN exposed e ON e.nspname = o.nspname
WHERE has_table_privilege('anon', o.oid, 'SELECT')
UNION ALL
-- 0004: tables without a primary key
SELECT 'no_primary_key', 'INFO', o.obj, 'no primary key'
FROM ours o JOIN pg_class c ON c.oid = o.oid
WHERE c.relkind = 'r' AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = o.oid AND k.contype = 'p')
ORDER BY 1, 3
