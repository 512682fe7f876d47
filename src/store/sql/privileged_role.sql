-- privileged_role: the connected role, when it holds more than the controller needs: a
-- superuser, or a role that bypasses row-level security and owns (or is a member of the
-- owner of) public.fly_preview_apps. One row (role, why) or none.
SELECT r.rolname::text,
       CASE WHEN r.rolsuper THEN 'is a superuser'
            ELSE 'bypasses row-level security and owns public.fly_preview_apps' END
FROM pg_catalog.pg_roles r
LEFT JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass('public.fly_preview_apps')
WHERE r.rolname = current_user
  AND (r.rolsuper
       OR (r.rolbypassrls AND c.oid IS NOT NULL
           AND pg_catalog.pg_has_role(current_user, c.relowner, 'USAGE')))
