#!/usr/bin/env bash
# Build a Supabase-faithful Postgres in a SECOND cluster (default port 54329), the way Supabase's
# own initialiser (schema/postgres/migrate.sh) and its auth service (GoTrue) do it:
#   1. initdb with the bootstrap superuser supabase_admin
#   2. create role postgres (superuser), run schema/postgres/init-scripts/*.sql as postgres
#   3. run schema/postgres/migrations/*.sql as supabase_admin (demotes postgres to
#      NOSUPERUSER ... BYPASSRLS)
#   4. run schema/auth/migrations/*.up.sql as supabase_auth_admin, one transaction each,
#      recording the version in auth.schema_migrations (what GoTrue's pop migrator does)
# Deviations are only made where this machine lacks a Supabase extension; each is printed as
# "supabase-setup: deviation: ...".
#
# Idempotent: a finished build leaves a marker (checksum of this script, the schema files and
# the port) in the cluster's data directory; a later run with the same checksum only starts the
# cluster and re-runs the checks. A different checksum (or SUPA_RESET=1) drops and rebuilds the
# cluster. The 5432 cluster is never touched.
#
# Env: SUPA_PORT (54329), SUPA_CLUSTER (supa), SUPA_PG_VERSION (highest in /etc/postgresql),
#      SUPA_SCHEMA_DIR (.ci/supabase/schema), SUPA_RESET=1 to force a rebuild.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SUPA_PORT=${SUPA_PORT:-54329}
SUPA_CLUSTER=${SUPA_CLUSTER:-supa}
SUPA_SCHEMA_DIR=${SUPA_SCHEMA_DIR:-$here/schema}
SUPA_PG_VERSION=${SUPA_PG_VERSION:-$(ls /etc/postgresql | sort -n | tail -n 1)}
SUPA_RESET=${SUPA_RESET:-0}
export LC_ALL=C # deterministic glob order (00-schema.sql before 00000000000000-...)
start_ts=$(date +%s%N)

log() { echo "supabase-setup: $*"; }
deviation() { echo "supabase-setup: deviation: $*"; }
die() { echo "supabase-setup: ERROR: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (it creates a cluster with pg_createcluster)"
[ "$SUPA_PORT" != 5432 ] || die "SUPA_PORT must not be 5432: roles are cluster-wide, keep Supabase's apart"
[ -d "$SUPA_SCHEMA_DIR/postgres/init-scripts" ] || die "no schema in $SUPA_SCHEMA_DIR"
bindir=/usr/lib/postgresql/$SUPA_PG_VERSION/bin
sharedir=/usr/share/postgresql/$SUPA_PG_VERSION
libdir=/usr/lib/postgresql/$SUPA_PG_VERSION/lib
[ -x "$bindir/initdb" ] || die "PostgreSQL $SUPA_PG_VERSION server binaries not found in $bindir"

# One run at a time (CI and a developer may both call it).
exec 9>"/tmp/fly-preview-supabase-setup.$SUPA_CLUSTER.lock"
flock -w 600 9 || die "another setup.sh holds the lock"

checksum=$( { echo "port=$SUPA_PORT version=$SUPA_PG_VERSION"; cat "${BASH_SOURCE[0]}";
              find "$SUPA_SCHEMA_DIR" -type f -name '*.sql' | sort | xargs cat; } | sha256sum | cut -c1-64)

psql_as() { # psql_as ROLE [psql args...]
    local role=$1; shift
    psql -X -q -v ON_ERROR_STOP=1 --no-password -h 127.0.0.1 -p "$SUPA_PORT" -d postgres -U "$role" "$@"
}

cluster_field() { # cluster_field N -> column N of pg_lsclusters for our cluster ("" if absent)
    pg_lsclusters -h 2>/dev/null | awk -v v="$SUPA_PG_VERSION" -v c="$SUPA_CLUSTER" -v n="$1" '$1==v && $2==c {print $n}'
}

start_cluster() {
    if [ "$(cluster_field 4)" != online ]; then
        log "starting cluster $SUPA_PG_VERSION/$SUPA_CLUSTER"
        # The server must not inherit the lock (fd 9) or our stdout/stderr (a CI log pipe would
        # then stay open). Before role postgres exists pg_ctlcluster warns that it cannot run its
        # startup checks; that is expected on the first start, so its output is shown only on error.
        local out
        if ! out=$(pg_ctlcluster --skip-systemctl-redirect "$SUPA_PG_VERSION" "$SUPA_CLUSTER" start \
                   </dev/null 2>&1 9>&-); then
            echo "$out" >&2
            die "pg_ctlcluster start failed"
        fi
    fi
    for _ in $(seq 1 60); do
        pg_isready -q -h 127.0.0.1 -p "$SUPA_PORT" -U supabase_admin -d postgres && return 0
        sleep 0.5
    done
    die "cluster on port $SUPA_PORT did not become ready (log: $(cluster_field 7))"
}

# ---- Deviations: decided from what the machine has, so a machine that has the extension gets
# Supabase's file unchanged. Each returns 0 when the deviation applies.
lacks_pgjwt() { [ ! -f "$sharedir/extension/pgjwt.control" ]; }
lacks_pgsodium() { [ ! -f "$sharedir/extension/pgsodium.control" ]; }
lacks_safeupdate() { [ ! -f "$libdir/safeupdate.so" ]; }

print_deviations() {
    lacks_pgjwt && deviation "init-scripts/00000000000000-initial-schema.sql: skipped 'create extension if not exists pgjwt with schema extensions' (pgjwt not packaged here)"
    lacks_pgsodium && deviation "migrations/20230529180330_alter_api_roles_for_inherit.sql: skipped 'GRANT pgsodium_keyholder to service_role' (pgsodium not installed, role does not exist)"
    lacks_safeupdate && deviation "after migrations: 'alter role authenticator reset session_preload_libraries' (20220118070449 preloads safeupdate, which is not installed; authenticator could not log in otherwise)"
    deviation "postgresql.conf: shared_preload_libraries = 'pg_stat_statements' only (Supabase also preloads supautils, pgaudit, pg_cron, pg_net, pgsodium, ... which are not installed here; migrations that look for them are no-ops, as upstream intends)"
    deviation "pg_hba: trust on 127.0.0.1 only, no passwords (Supabase uses scram-sha-256 and TLS); roles keep migrate.sh's empty passwords"
    deviation "storage-api and realtime service migrations are not run (only the database image and the auth service are reproduced)"
    return 0
}

# Comment out exactly one line of a copied file; fail loudly if upstream changed it.
comment_out_line() { # file fixed-string
    local file=$1 line=$2 n
    n=$(grep -cxF -- "$line" "$file" || true)
    [ "$n" = 1 ] || die "expected exactly one line '$line' in $file, found $n: the schema changed, revisit the deviation"
    awk -v l="$line" '$0==l {print "-- [fly-preview-controller CI deviation] " $0; next} {print}' "$file" >"$file.tmp"
    mv "$file.tmp" "$file"
}

run_checks() {
    local failed=0 out
    out=$(psql_as supabase_admin -At -F '|' <<'SQL'
with r as (select * from pg_roles)
select 'postgres is NOSUPERUSER BYPASSRLS', coalesce((select not rolsuper and rolbypassrls and rolcanlogin and rolcreatedb and rolcreaterole from r where rolname='postgres'), false),
       (select format('rolsuper=%s rolbypassrls=%s login=%s createdb=%s createrole=%s replication=%s', rolsuper, rolbypassrls, rolcanlogin, rolcreatedb, rolcreaterole, rolreplication) from r where rolname='postgres')
union all
select 'auth.uid() owned by supabase_auth_admin', coalesce((select pg_get_userbyid(proowner)='supabase_auth_admin' from pg_proc where oid=to_regprocedure('auth.uid()')), false),
       coalesce((select 'owner=' || pg_get_userbyid(proowner) from pg_proc where oid=to_regprocedure('auth.uid()')), 'missing')
union all
select 'roles anon/authenticated/service_role/authenticator exist', (select count(*)=4 from r where rolname in ('anon','authenticated','service_role','authenticator')),
       (select string_agg(format('%s(login=%s,inherit=%s,bypassrls=%s)', rolname, rolcanlogin, rolinherit, rolbypassrls), ' ' order by rolname) from r where rolname in ('anon','authenticated','service_role','authenticator'))
union all
select 'authenticator LOGIN NOINHERIT, service_role BYPASSRLS', coalesce((select rolcanlogin and not rolinherit from r where rolname='authenticator') and (select rolbypassrls from r where rolname='service_role'), false), ''
union all
select 'default privileges in public (for postgres) grant tables to anon, authenticated',
       coalesce((select bool_and(x) from (select exists (select 1 from pg_default_acl d, aclexplode(d.defaclacl) a
                 where d.defaclnamespace='public'::regnamespace and d.defaclrole='postgres'::regrole and d.defaclobjtype='r'
                   and a.grantee=g::regrole and a.privilege_type='SELECT') as x from unnest(array['anon','authenticated','service_role']) g) s), false),
       (select array_to_string(defaclacl, ' ') from pg_default_acl where defaclnamespace='public'::regnamespace and defaclrole='postgres'::regrole and defaclobjtype='r')
union all
select 'auth.schema_migrations filled by the auth migrations', (select count(*) > 7 from auth.schema_migrations),
       (select format('%s versions, newest %s', count(*), max(version)) from auth.schema_migrations)
SQL
) || die "check query failed"
    while IFS='|' read -r name ok detail; do
        if [ "$ok" = t ]; then log "check: OK   $name ($detail)"; else log "check: FAIL $name ($detail)"; failed=1; fi
    done <<<"$out"
    # Behaviour, as postgres (the role a Supabase user's migrations run as): a new table in public
    # is reachable by anon/authenticated; auth.uid() reads the JWT claims like PostgREST sets them.
    out=$(psql_as postgres -At <<'SQL'
begin;
create table public.__supabase_setup_probe (id int);
select has_table_privilege('anon', 'public.__supabase_setup_probe', 'select,insert,update,delete')
   and has_table_privilege('authenticated', 'public.__supabase_setup_probe', 'select,insert,update,delete');
select set_config('request.jwt.claims', '{"sub":"00000000-0000-0000-0000-00000000abcd","role":"authenticated"}', true) is not null;
select auth.uid() = '00000000-0000-0000-0000-00000000abcd'::uuid;
rollback;
SQL
) || { log "check: FAIL behaviour probe as postgres"; failed=1; out=""; }
    if [ "$out" = $'t\nt\nt' ]; then
        log "check: OK   as postgres: new public table gets anon+authenticated privileges; auth.uid() = request.jwt.claims->>'sub'"
    else
        log "check: FAIL as postgres: probe returned '$(echo $out)'"; failed=1
    fi
    if out=$(psql_as authenticator -At -c "select current_user || ' rolconfig=' || coalesce((select array_to_string(rolconfig, ',') from pg_roles where rolname = current_user), '')" 2>&1); then
        log "check: OK   authenticator can log in ($out)"
    else
        log "check: FAIL authenticator cannot log in: $out"; failed=1
    fi
    return $failed
}

print_urls() {
    log "url (role a Supabase user's migrations run as): postgres://postgres@127.0.0.1:$SUPA_PORT/postgres"
    log "url (PostgREST's login role):                   postgres://authenticator@127.0.0.1:$SUPA_PORT/postgres"
    log "url (bootstrap superuser, test setup only):     postgres://supabase_admin@127.0.0.1:$SUPA_PORT/postgres"
}

finish() {
    local ms=$(( ($(date +%s%N) - start_ts) / 1000000 ))
    log "done in $((ms / 1000)).$(printf '%03d' $((ms % 1000))) s"
}

# ---------------------------------------------------------------- warm path
datadir=$(cluster_field 6)
if [ -n "$datadir" ] && [ "$SUPA_RESET" != 1 ]; then
    if [ "$(cat "$datadir/fly-preview-supabase-setup.done" 2>/dev/null || true)" = "$checksum" ]; then
        log "cluster $SUPA_PG_VERSION/$SUPA_CLUSTER already built with this checksum (${checksum:0:12}); starting it"
        start_cluster
        print_deviations
        if run_checks; then print_urls; finish; exit 0; fi
        log "checks failed on the existing cluster: rebuilding it"
    else
        log "cluster $SUPA_PG_VERSION/$SUPA_CLUSTER exists but was not built by this script version: rebuilding it"
    fi
fi
if [ -n "$datadir" ]; then
    log "dropping cluster $SUPA_PG_VERSION/$SUPA_CLUSTER"
    pg_dropcluster --stop "$SUPA_PG_VERSION" "$SUPA_CLUSTER"
fi

# ---------------------------------------------------------------- cold path
if pg_isready -q -h 127.0.0.1 -p "$SUPA_PORT" -U supabase_admin -d postgres; then
    die "something already listens on 127.0.0.1:$SUPA_PORT (not cluster $SUPA_PG_VERSION/$SUPA_CLUSTER); set SUPA_PORT"
fi
log "creating cluster $SUPA_PG_VERSION/$SUPA_CLUSTER on 127.0.0.1:$SUPA_PORT, bootstrap superuser supabase_admin"
pg_createcluster "$SUPA_PG_VERSION" "$SUPA_CLUSTER" -p "$SUPA_PORT" --start-conf=manual \
    --locale=C.UTF-8 --encoding=UTF8 -- --auth=trust --username=supabase_admin >/dev/null
confdir=/etc/postgresql/$SUPA_PG_VERSION/$SUPA_CLUSTER
datadir=$(cluster_field 6)
cat >"$confdir/conf.d/90-supabase.conf" <<EOF
# written by .ci/supabase/setup.sh
listen_addresses = '127.0.0.1'
port = $SUPA_PORT
shared_preload_libraries = 'pg_stat_statements'
wal_level = logical
autovacuum = off
EOF
cat >"$confdir/pg_hba.conf" <<'EOF'
# written by .ci/supabase/setup.sh: local test cluster, trust on loopback only
local all all               trust
host  all all 127.0.0.1/32  trust
EOF
start_cluster

work=$(mktemp -d /tmp/fly-preview-supabase-setup.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp -r "$SUPA_SCHEMA_DIR/postgres" "$SUPA_SCHEMA_DIR/auth" "$work/"
lacks_pgjwt && comment_out_line "$work/postgres/init-scripts/00000000000000-initial-schema.sql" \
    'create extension if not exists pgjwt            with schema extensions;'
lacks_pgsodium && comment_out_line "$work/postgres/migrations/20230529180330_alter_api_roles_for_inherit.sql" \
    'GRANT pgsodium_keyholder to service_role;'

# --- migrate.sh, step by step (PGPASSWORD is empty there too). NOTICEs ("already exists,
# skipping", "extension pg_graphql does not exist") are expected and hidden; warnings still show.
export PGOPTIONS="-c client_min_messages=warning"
PGPASSWORD=""
psql_as supabase_admin <<EOSQL
do \$\$
begin
  -- postgres role is pre-created during AMI build
  if not exists (select from pg_roles where rolname = 'postgres') then
    create role postgres superuser login password '$PGPASSWORD';
    alter database postgres owner to postgres;
  end if;
end \$\$
EOSQL
for sql in "$work"/postgres/init-scripts/*.sql; do
    log "running init-scripts/$(basename "$sql") as postgres"
    psql_as postgres -f "$sql"
done
psql_as postgres -c "ALTER USER supabase_admin WITH PASSWORD '$PGPASSWORD'"
for sql in "$work"/postgres/migrations/*.sql; do
    log "running migrations/$(basename "$sql") as supabase_admin"
    psql_as supabase_admin -f "$sql"
done
psql_as supabase_admin -c 'SELECT extensions.pg_stat_statements_reset(); SELECT pg_stat_reset();' >/dev/null || true
if lacks_safeupdate; then
    psql_as supabase_admin -c 'alter role authenticator reset session_preload_libraries'
fi

# --- the auth service's migrations (GoTrue: pop FileMigrator, Namespace=auth, one transaction
# per file, version recorded in auth.schema_migrations; dialect-specific files only for postgres)
n_auth=0
for sql in "$work"/auth/migrations/*.up.sql; do
    base=$(basename "$sql")
    version=${base%%_*}
    case "$base" in
        *.postgres.up.sql) ;;
        *.*.up.sql) log "skipping $base (other SQL dialect)"; continue ;;
    esac
    if [ "$(psql_as supabase_auth_admin -At -c "select count(*) from auth.schema_migrations where version = '$version'")" != 0 ]; then
        continue
    fi
    sed -E 's/\{\{ *index \.Options "Namespace" *\}\}/auth/g' "$sql" >"$sql.rendered"
    if grep -q '{{' "$sql.rendered"; then die "unrendered template left in $base"; fi
    psql_as supabase_auth_admin -1 -f "$sql.rendered" \
        -c "insert into schema_migrations (version) values ('$version')"
    n_auth=$((n_auth + 1))
done
log "applied $n_auth auth migrations as supabase_auth_admin"
unset PGOPTIONS

print_deviations
run_checks || die "checks failed after a fresh build"
echo "$checksum" >"$datadir/fly-preview-supabase-setup.done"
log "cluster built; marker $datadir/fly-preview-supabase-setup.done"
print_urls
finish
