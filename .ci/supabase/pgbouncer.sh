#!/usr/bin/env bash
# Put Debian's PgBouncer in front of the Supabase-like cluster from setup.sh, the way Supabase's
# poolers sit in front of a project:
#   transaction mode on 127.0.0.1:6543 (Supabase's transaction pooler port)
#   session mode     on 127.0.0.1:6544 (Supabase's session pooler uses 5432; taken here)
#   the same two with server_round_robin = 1 (servers reused oldest-first instead of
#   last-in-first-out) on 127.0.0.1:6545 (transaction) and 6546 (session)
# Two PgBouncer processes, because pool_mode is per process (or per database, not per port).
# Authentication as Supabase's own PgBouncer did it: auth_user=pgbouncer with
# auth_query 'SELECT * FROM pgbouncer.get_auth($1)' (init-scripts/00-schema.sql), so any role
# of the cluster can log in, including ones the tests create later; auth_type=trust because the
# cluster itself is trust-only on loopback.
#
# Usage: pgbouncer.sh [start|restart|stop|status]   (start keeps healthy running instances,
#        restart always restarts; both idempotent)
# Env: SUPA_PORT (54329), PGBOUNCER_TX_PORT (6543), PGBOUNCER_SESSION_PORT (6544),
#      PGBOUNCER_TX_RR_PORT (6545), PGBOUNCER_SESSION_RR_PORT (6546),
#      PGBOUNCER_DIR (/tmp/fly-preview-pgbouncer), PGBOUNCER_RUN_AS (postgres),
#      PGBOUNCER_POOL_SIZE (default_pool_size, 15).
set -euo pipefail

SUPA_PORT=${SUPA_PORT:-54329}
PGBOUNCER_TX_PORT=${PGBOUNCER_TX_PORT:-6543}
PGBOUNCER_SESSION_PORT=${PGBOUNCER_SESSION_PORT:-6544}
PGBOUNCER_TX_RR_PORT=${PGBOUNCER_TX_RR_PORT:-6545}
PGBOUNCER_SESSION_RR_PORT=${PGBOUNCER_SESSION_RR_PORT:-6546}
PGBOUNCER_DIR=${PGBOUNCER_DIR:-/tmp/fly-preview-pgbouncer}
PGBOUNCER_RUN_AS=${PGBOUNCER_RUN_AS:-postgres}
PGBOUNCER_POOL_SIZE=${PGBOUNCER_POOL_SIZE:-15}
action=${1:-start}

log() { echo "pgbouncer-setup: $*"; }
die() { echo "pgbouncer-setup: ERROR: $*" >&2; exit 1; }

instances="transaction:$PGBOUNCER_TX_PORT session:$PGBOUNCER_SESSION_PORT transaction-rr:$PGBOUNCER_TX_RR_PORT session-rr:$PGBOUNCER_SESSION_RR_PORT"

pid_of() { # pid_of NAME -> pid of our running instance, or nothing
    local pidfile="$PGBOUNCER_DIR/$1/pgbouncer.pid" pid
    [ -f "$pidfile" ] || return 0
    pid=$(cat "$pidfile" 2>/dev/null || true)
    [ -n "$pid" ] || return 0
    # only a pgbouncer started with our config file counts
    if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$PGBOUNCER_DIR/$1/pgbouncer.ini"; then
        echo "$pid"
    fi
}

stop_instance() { # stop_instance NAME
    local pid
    pid=$(pid_of "$1")
    [ -n "$pid" ] || return 0
    log "stopping $1 pooler (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true # SIGTERM = immediate shutdown
    for _ in $(seq 1 100); do
        # gone, or a zombie waiting for a PID 1 that does not reap (as in this container)
        kill -0 "$pid" 2>/dev/null || return 0
        [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ] || return 0
        sleep 0.1
    done
    die "pgbouncer pid $pid did not stop"
}

install_pgbouncer() {
    command -v pgbouncer >/dev/null && return 0
    log "installing Debian's pgbouncer"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends pgbouncer </dev/null >/tmp/fly-preview-pgbouncer-apt.log 2>&1; then
        apt-get update -q </dev/null >>/tmp/fly-preview-pgbouncer-apt.log 2>&1 || true
        apt-get install -y -q --no-install-recommends pgbouncer </dev/null >>/tmp/fly-preview-pgbouncer-apt.log 2>&1 \
            || { tail -n 20 /tmp/fly-preview-pgbouncer-apt.log >&2; die "apt-get install pgbouncer failed"; }
    fi
    command -v pgbouncer >/dev/null || die "pgbouncer not on PATH after install"
}

start_instance() { # start_instance NAME PORT (NAME: transaction|session, -rr = round robin)
    local name=$1 port=$2 dir="$PGBOUNCER_DIR/$1" rr=0
    case "$name" in *-rr) rr=1 ;; esac
    stop_instance "$name"
    rm -f "$dir/pgbouncer.pid" # stale after a crash or kill -9; pgbouncer would refuse to start
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "port $port is already taken by something else"
    fi
    mkdir -p "$dir"
    # auth_user's own entry; every other role is looked up with auth_query. postgres is listed
    # too: PgBouncer 1.18 aborts ("put_in_order: found existing elem") when an admin_users
    # member that auth_query already loaded logs into the admin console.
    printf '"pgbouncer" ""\n"postgres" ""\n' >"$dir/userlist.txt"
    cat >"$dir/pgbouncer.ini" <<EOF
; written by .ci/supabase/pgbouncer.sh
[databases]
* = host=127.0.0.1 port=$SUPA_PORT

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
pool_mode = ${name%-rr}
server_round_robin = $rr
auth_type = trust
auth_file = $dir/userlist.txt
auth_user = pgbouncer
auth_query = SELECT * FROM pgbouncer.get_auth(\$1)
admin_users = postgres
stats_users = postgres
ignore_startup_parameters = extra_float_digits
default_pool_size = $PGBOUNCER_POOL_SIZE
max_client_conn = 200
server_reset_query = DISCARD ALL
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
EOF
    chown -R "$PGBOUNCER_RUN_AS" "$dir"
    # pgbouncer refuses to run as root. Close fd 9 and the caller's stdout/stderr so a CI log
    # pipe is not held open by the daemon.
    runuser -u "$PGBOUNCER_RUN_AS" -- pgbouncer -d -q "$dir/pgbouncer.ini" </dev/null >>"$dir/start.log" 2>&1 9>&- \
        || { tail -n 20 "$dir/start.log" "$dir/pgbouncer.log" >&2 || true; die "pgbouncer ($name) failed to start"; }
    for _ in $(seq 1 50); do
        if psql -X -q -At -h 127.0.0.1 -p "$port" -U postgres -d postgres -c 'select 1' >/dev/null 2>&1; then
            log "started $name pooler on 127.0.0.1:$port (pid $(pid_of "$name"), log $dir/pgbouncer.log)"
            return 0
        fi
        sleep 0.1
    done
    tail -n 20 "$dir/pgbouncer.log" >&2 || true
    die "$name pooler on port $port does not answer"
}

verify() {
    local failed=0 name port got mode
    for inst in $instances; do
        name=${inst%%:*} port=${inst##*:}
        got=$(timeout 15 psql -X -At -h 127.0.0.1 -p "$port" -U postgres -d postgres -c 'select 1' 2>&1 || true)
        mode=$(timeout 15 psql -X -At -h 127.0.0.1 -p "$port" -U postgres -d pgbouncer -c 'show config' 2>/dev/null \
               | awk -F'|' '$1=="pool_mode"{print $2}' || true)
        if [ "$got" = 1 ] && [ "$mode" = "${name%-rr}" ]; then
            log "check: OK   127.0.0.1:$port answers select 1 (admin console: pool_mode=$mode)"
        else
            log "check: FAIL 127.0.0.1:$port: select 1 -> '$got', pool_mode '$mode'"; failed=1
        fi
    done
    return $failed
}

print_urls() {
    log "url (transaction mode, like Supabase :6543): postgres://postgres@127.0.0.1:$PGBOUNCER_TX_PORT/postgres"
    log "url (session mode, like Supabase's session pooler): postgres://postgres@127.0.0.1:$PGBOUNCER_SESSION_PORT/postgres"
    log "urls with server_round_robin = 1: transaction :$PGBOUNCER_TX_RR_PORT, session :$PGBOUNCER_SESSION_RR_PORT"
}

# One run at a time; the daemons must not inherit this lock (fd 9 is closed for them).
exec 9>/tmp/fly-preview-pgbouncer-setup.lock
flock -w 120 9 || die "another pgbouncer.sh holds the lock"

case "$action" in
    start | restart)
        [ "$(id -u)" = 0 ] || die "run as root (installs pgbouncer, switches to $PGBOUNCER_RUN_AS)"
        pg_isready -q -h 127.0.0.1 -p "$SUPA_PORT" -U supabase_admin -d postgres \
            || die "no Postgres on 127.0.0.1:$SUPA_PORT: run .ci/supabase/setup.sh first"
        install_pgbouncer
        log "$(pgbouncer --version | head -n 1)"
        mkdir -p "$PGBOUNCER_DIR"
        # Warm path: instances already running with this script's config and answering are
        # left alone (other test runs may be connected); anything else is (re)started.
        for inst in $instances; do
            if [ "$action" = start ] && [ -n "$(pid_of "${inst%%:*}")" ] \
                && grep -qF "listen_port = ${inst##*:}" "$PGBOUNCER_DIR/${inst%%:*}/pgbouncer.ini" 2>/dev/null \
                && grep -qF "port=$SUPA_PORT" "$PGBOUNCER_DIR/${inst%%:*}/pgbouncer.ini" 2>/dev/null \
                && timeout 15 psql -X -q -At -h 127.0.0.1 -p "${inst##*:}" -U postgres -d postgres -c 'select 1' >/dev/null 2>&1; then
                log "${inst%%:*} pooler already running on 127.0.0.1:${inst##*:} (pid $(pid_of "${inst%%:*}")); kept"
                continue
            fi
            start_instance "${inst%%:*}" "${inst##*:}"
        done
        verify || die "pooler checks failed"
        print_urls
        ;;
    stop)
        for inst in $instances; do stop_instance "${inst%%:*}"; done
        log "stopped"
        ;;
    status)
        for inst in $instances; do
            pid=$(pid_of "${inst%%:*}")
            log "${inst%%:*} on 127.0.0.1:${inst##*:}: $([ -n "$pid" ] && echo "running (pid $pid)" || echo "not running")"
        done
        verify && print_urls
        ;;
    *) die "usage: $0 [start|stop|status]" ;;
esac
