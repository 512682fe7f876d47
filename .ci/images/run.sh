#!/usr/bin/env bash
# Builds both images with podman and runs them. Self-contained; exits non-zero on the
# first failure; every line it prints starts with `images:`. See .ci/images/README.md.
#
#   bash .ci/images/run.sh            (as root; CONTROLLER_BIN=path/to/fly-preview-controller)
#
# 1. Stand-in base images (bases.sh; cached).
# 2. The runner image from deploy/runner/Dockerfile, and the daemon image from deploy/Dockerfile
#    with CONTROLLER_BINARY=prebuilt: the runtime stage around the binary at $CONTROLLER_BIN
#    (default target/release/fly-preview-controller), as no Rust builder image can be pulled. The
#    binary must be a production build, without the simulator:
#      cargo build --release --no-default-features -p fly-preview-controller -p fly-sim
# 3. Daemon image: --version; uid; no simulator in the binary (`demo` refused as an unknown
#    command, no `fly_sim` symbol); `migrate` and `run` against a scratch database on the local
#    Postgres (127.0.0.1:5432, user postgres) and the Fly API simulator on the host ($FLY_SIM_BIN,
#    default fly-sim next to the binary); /readyz must answer 200; one preview row must reach
#    status `running`; SIGTERM must stop it with exit code 0.
# 4. Runner image (built with the prebuilt tree of the vite-react-ts template only): a Vite
#    react-ts app scaffolded with create-vite (in the node base image) with the template's
#    package.json and lockfile (so npm ci is skipped: the prebuilt tree is used), committed to a
#    bare repo served over HTTPS with a token (git_https.py, a CA made here, the runner told to
#    trust it through GIT_SSL_CAINFO); the container, as uid 10001 under tini, must
#    clone it, check it out into the prebuilt tree and answer HTTP 200 from Vite's dev server;
#    SIGTERM must stop it with 0.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
HERE="$ROOT/.ci/images"
export CACHE_DIR="${CACHE_DIR:-/var/cache/fly-preview-ci}"
CONTROLLER_BIN="${CONTROLLER_BIN:-target/release/fly-preview-controller}"
DAEMON_TAG="${DAEMON_TAG:-localhost/fly-preview-controller:ci}"
RUNNER_TAG="${RUNNER_TAG:-localhost/fly-preview-runner:ci}"
NODE_BASE="docker.io/library/node:22-bookworm-slim"
DEBIAN_BASE="docker.io/library/debian:bookworm-slim"
PG_HOST=127.0.0.1 PG_PORT=5432 PG_USER=postgres
DB_NAME="${IMAGES_DB_NAME:-fly_preview_image_ci}"
DB_URL="postgres://$PG_USER@$PG_HOST:$PG_PORT/$DB_NAME"
READY_DEADLINE="${READY_DEADLINE:-60}"       # seconds for the daemon's /readyz
ROW_DEADLINE="${ROW_DEADLINE:-60}"           # seconds for the sample row to reach `running`
RUNNER_DEADLINE="${RUNNER_DEADLINE:-240}"    # seconds for clone + npm ci + Vite's first 200
GIT_HOST=git.test

START=$(date +%s)
log() { printf 'images: %s\n' "$*"; }
die() { printf 'images: FAILED: %s\n' "$*" >&2; exit 1; }
since() { echo $(($(date +%s) - $1)); }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
show_log() { [ -s "$1" ] && sed 's/^/images:   | /' "$1" | tail -n "${2:-40}" >&2 || true; }

WORK="$(mktemp -d /tmp/images-ci.XXXXXX)"
CONTAINERS=()
PIDS=()
DB_CREATED=0
cleanup() {
    local rc=$?
    set +e
    for c in "${CONTAINERS[@]}"; do podman rm -f -t 2 "$c" >/dev/null 2>&1; done
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    if [ "$DB_CREATED" = 1 ]; then
        psql -q -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres -v ON_ERROR_STOP=1 \
            -c "drop database if exists $DB_NAME with (force)" >/dev/null 2>&1 \
            || log "warning: could not drop database $DB_NAME"
    fi
    rm -rf "$WORK"
    if [ "$rc" -eq 0 ]; then log "all green in $(since "$START")s"; else log "FAILED (exit $rc) after $(since "$START")s"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- 0. inputs ---------------------------------------------------------------------------------
[ "$(id -u)" -eq 0 ] || die "run as root (podman builds with --isolation=chroot and runs rootful)"
BUILD_HINT="cargo build --release --no-default-features -p fly-preview-controller -p fly-sim"
[ -x "$CONTROLLER_BIN" ] || die "no controller binary at $CONTROLLER_BIN ($BUILD_HINT, or set CONTROLLER_BIN)"
# Private copies, so a concurrent `cargo build` cannot swap a binary under the run.
mkdir -p "$WORK/prebuilt" "$WORK/empty"
cp "$CONTROLLER_BIN" "$WORK/prebuilt/fly-preview-controller"
SIM_BIN="${FLY_SIM_BIN:-$(dirname "$CONTROLLER_BIN")/fly-sim}"
[ -x "$SIM_BIN" ] || die "no simulator at $SIM_BIN ($BUILD_HINT, or set FLY_SIM_BIN)"
cp "$SIM_BIN" "$WORK/fly-sim"
SIM_CMD=("$WORK/fly-sim")
log "controller binary: $CONTROLLER_BIN ($("$WORK/prebuilt/fly-preview-controller" --version))"
log "simulator: $SIM_BIN"

# ---- 1. bases ----------------------------------------------------------------------------------
t=$(date +%s)
bash "$HERE/bases.sh"
log "bases ready in $(since "$t")s"

# `podman run` that works on this kind of machine: runc (crun cannot set up the cgroups here),
# the host network, and explicit rlimits no higher than conmon's own (the default ones fail with
# EPERM). The highest nproc limit that the runtime accepts is probed once.
nofile=$(ulimit -Hn)
if [ "$nofile" = unlimited ] || [ "$nofile" -gt 65536 ]; then nofile=65536; fi
PODMAN_RUN=()
for nproc in 65536 32768 16384 8192 4096; do
    cand=(podman --runtime runc run --network=host --ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc")
    if "${cand[@]}" --rm "$DEBIAN_BASE" true >/dev/null 2>&1; then PODMAN_RUN=("${cand[@]}"); break; fi
done
[ "${#PODMAN_RUN[@]}" -gt 0 ] || { "${cand[@]}" --rm "$DEBIAN_BASE" true || true; die "cannot run a container with podman"; }
log "podman run: ${PODMAN_RUN[*]:1}"

# ---- 2. images ---------------------------------------------------------------------------------
BUILD=(podman build --isolation=chroot --network=host)
# The runner image with one small prebuilt template (the shipped default builds all of
# deploy/runner/templates.json); its npm ci trusts the host's CA bundle, as npm in containers does.
host_ca="${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}"
RUNNER_BUILD_ARGS=(--build-arg "RUNNER_TEMPLATES=${RUNNER_TEMPLATES:-vite-react-ts}")
if [ -r "$host_ca" ]; then
    RUNNER_BUILD_ARGS+=(-v "$(readlink -f "$host_ca"):/ci/host-ca.pem:ro" --build-arg NODE_EXTRA_CA_CERTS=/ci/host-ca.pem)
fi
t=$(date +%s)
"${BUILD[@]}" -t "$RUNNER_TAG" "${RUNNER_BUILD_ARGS[@]}" -f deploy/runner/Dockerfile deploy/runner >"$WORK/build-runner.log" 2>&1 \
    || { show_log "$WORK/build-runner.log"; die "building the runner image failed"; }
log "runner image $RUNNER_TAG built in $(since "$t")s ($(podman image inspect -f '{{.Size}}' "$RUNNER_TAG" | numfmt --to=si)B)"

t=$(date +%s)
"${BUILD[@]}" -t "$DAEMON_TAG" -f deploy/Dockerfile --build-arg CONTROLLER_BINARY=prebuilt \
    --build-context "prebuilt=$WORK/prebuilt" "$WORK/empty" >"$WORK/build-daemon.log" 2>&1 \
    || { show_log "$WORK/build-daemon.log"; die "building the daemon image failed"; }
log "daemon image $DAEMON_TAG built in $(since "$t")s ($(podman image inspect -f '{{.Size}}' "$DAEMON_TAG" | numfmt --to=si)B)"

# ---- 3. daemon image ---------------------------------------------------------------------------
t=$(date +%s)
version="$("${PODMAN_RUN[@]}" --rm "$DAEMON_TAG" --version)" || die "daemon image: --version failed"
[ -n "$version" ] || die "daemon image: --version printed nothing"
log "daemon image: --version: $version"
uid="$("${PODMAN_RUN[@]}" --rm --entrypoint id "$DAEMON_TAG" -u)"
[ "$uid" = 65532 ] || die "daemon image: runs as uid $uid, want 65532"
log "daemon image: uid $uid"

# The production binary carries no simulator: `demo` (the default cargo feature that embeds
# crates/fly-sim) is not a command, and no fly_sim code is linked.
demo_rc=0
demo_out="$("${PODMAN_RUN[@]}" --rm "$DAEMON_TAG" demo --help 2>&1)" || demo_rc=$?
case "$demo_rc:$demo_out" in
    "2:"*"unrecognized subcommand 'demo'"*) ;;
    *) die "daemon image: \`demo --help\` exited $demo_rc, want 2 and \"unrecognized subcommand 'demo'\" from a production build ($BUILD_HINT): $(printf '%s' "$demo_out" | head -n 3)" ;;
esac
"${PODMAN_RUN[@]}" --rm --entrypoint cat "$DAEMON_TAG" /usr/local/bin/fly-preview-controller >"$WORK/image-binary" \
    || die "daemon image: cannot read /usr/local/bin/fly-preview-controller"
cmp -s "$WORK/image-binary" "$WORK/prebuilt/fly-preview-controller" || die "daemon image: its binary is not \$CONTROLLER_BIN"
sim_symbols="$(grep -ac fly_sim "$WORK/image-binary" || true)"
[ "$sim_symbols" = 0 ] || die "daemon image: the binary contains fly_sim ($sim_symbols matches): built with the simulator ($BUILD_HINT)"
log "daemon image: no simulator: \`demo\` refused ($(printf '%s' "$demo_out" | head -n 1)), 0 fly_sim symbols in $(numfmt --to=si "$(stat -c %s "$WORK/image-binary")")B"

if ! pg_isready -q -h "$PG_HOST" -p "$PG_PORT"; then
    log "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n1)" main start
    for _ in $(seq 1 30); do pg_isready -q -h "$PG_HOST" -p "$PG_PORT" && break; sleep 1; done
fi
psql_db() { PGOPTIONS='-c client_min_messages=warning' psql -qAtX -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -v ON_ERROR_STOP=1 "$@"; }
psql_db -d postgres -c "drop database if exists $DB_NAME with (force)" -c "create database $DB_NAME" >/dev/null
DB_CREATED=1

"${PODMAN_RUN[@]}" --rm -e DATABASE_URL="$DB_URL" "$DAEMON_TAG" migrate >"$WORK/migrate.log" 2>&1 \
    || { show_log "$WORK/migrate.log"; die "daemon image: migrate failed"; }
migrations="$(psql_db -d "$DB_NAME" -c 'select count(*) from fly_preview_controller._sqlx_migrations where success')"
[ "$migrations" -ge 1 ] || die "daemon image: migrate applied nothing"
log "daemon image: migrate: $migrations migrations applied to $DB_NAME"

sim_port=$(free_port)
"${SIM_CMD[@]}" --listen "127.0.0.1:$sim_port" >"$WORK/sim.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do
    curl -s -o /dev/null "http://127.0.0.1:$sim_port/" && break
    kill -0 "${PIDS[-1]}" 2>/dev/null || { show_log "$WORK/sim.log"; die "simulator exited"; }
    sleep 0.1
done
log "simulator on 127.0.0.1:$sim_port"

admin_port=$(free_port)
daemon=images-ci-daemon-$$
podman rm -f "$daemon" >/dev/null 2>&1 || true
CONTAINERS+=("$daemon")
t_run=$(date +%s.%N)
"${PODMAN_RUN[@]}" -d --name "$daemon" \
    -e DATABASE_URL="$DB_URL" -e FLY_API_TOKEN=ci-any-token -e FLY_API_URL="http://127.0.0.1:$sim_port" \
    -e LISTEN_ADDR="127.0.0.1:$admin_port" -e POLL_INTERVAL=500ms \
    "$DAEMON_TAG" >/dev/null || die "daemon image: cannot start run"
ready=""
for _ in $(seq 1 $((READY_DEADLINE * 5))); do
    if ready="$(curl -fsS --max-time 2 "http://127.0.0.1:$admin_port/readyz" 2>/dev/null)"; then break; fi
    ready=""
    [ "$(podman inspect -f '{{.State.Running}}' "$daemon")" = true ] || break
    sleep 0.2
done
if [ -z "$ready" ]; then
    podman logs "$daemon" >"$WORK/daemon.log" 2>&1; show_log "$WORK/daemon.log"
    die "daemon image: /readyz did not answer 200 within ${READY_DEADLINE}s"
fi
log "daemon image: run: /readyz 200 after $(python3 -c "import time; print(f'{time.time() - $t_run:.1f}')")s: $(printf '%s' "$ready" | tr '\n' ' ' | cut -c1-200)"

# One preview request end to end: the daemon in the image must deploy it on the simulator.
user_id=00000000-0000-4000-8000-0000000000c1
app="$("${PODMAN_RUN[@]}" --rm "$DAEMON_TAG" app-name --user-id "$user_id" --project-id image-ci)"
psql_db -d "$DB_NAME" -c "insert into public.fly_preview_apps (user_id, project_id, fly_app_name, github_repo_url, github_branch)
    values ('$user_id', 'image-ci', '$app', 'https://github.com/octocat/hello-world', 'main')" >/dev/null
t_row=$(date +%s)
status=""
while [ $(($(date +%s) - t_row)) -lt "$ROW_DEADLINE" ]; do
    status="$(psql_db -d "$DB_NAME" -c "select status from public.fly_preview_apps where fly_app_name = '$app'")"
    [ "$status" = running ] && break
    sleep 0.5
done
if [ "$status" != running ]; then
    podman logs "$daemon" >"$WORK/daemon.log" 2>&1; show_log "$WORK/daemon.log"
    die "daemon image: row $app is '$status', not running, after ${ROW_DEADLINE}s"
fi
log "daemon image: row $app reached status running in $(since "$t_row")s ($(psql_db -d "$DB_NAME" -c "select preview_url from public.fly_preview_apps where fly_app_name = '$app'"))"

podman stop -t 30 "$daemon" >/dev/null
code="$(podman inspect -f '{{.State.ExitCode}}' "$daemon")"
[ "$code" = 0 ] || { podman logs "$daemon" >"$WORK/daemon.log" 2>&1; show_log "$WORK/daemon.log"; die "daemon image: exit code $code after SIGTERM"; }
log "daemon image: stopped by SIGTERM, exit code 0 (checks took $(since "$t")s)"
podman rm -f "$daemon" >/dev/null
kill "${PIDS[-1]}" 2>/dev/null || true

# ---- 4. runner image ---------------------------------------------------------------------------
t=$(date +%s)
# What must not be in the image: the runner's tests.
"${PODMAN_RUN[@]}" --rm --entrypoint sh "$RUNNER_TAG" -c \
    'test -f /usr/local/lib/runner/entrypoint.mjs && test -d /usr/local/lib/runner/lib && test ! -e /usr/local/lib/runner/test && test "$NEXT_TELEMETRY_DISABLED" = 1' \
    || die "runner image: layout (entrypoint.mjs, lib/, no test/, NEXT_TELEMETRY_DISABLED) is wrong"
prebuilt="$("${PODMAN_RUN[@]}" --rm --entrypoint sh "$RUNNER_TAG" -c 'cat /opt/prebuilt/*/.prebuilt.json; du -sm /opt/prebuilt | cut -f1')" \
    || die "runner image: no prebuilt dependency tree in /opt/prebuilt"
case "$prebuilt" in *'"template":"vite-react-ts"'*) ;; *) die "runner image: /opt/prebuilt has no vite-react-ts tree: $prebuilt" ;; esac
log "runner image: prebuilt dependency tree vite-react-ts ($(printf '%s' "$prebuilt" | tail -n 1) MB)"

# Containers that reach the npm registry trust what the host trusts: a network that intercepts TLS
# has its CA in the host's bundle (NODE_EXTRA_CA_CERTS), not in the image's.
NODE_CA=()
host_ca="${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}"
if [ -r "$host_ca" ]; then
    NODE_CA=(-v "$(readlink -f "$host_ca"):/ci/host-ca.pem:ro" -e NODE_EXTRA_CA_CERTS=/ci/host-ca.pem)
fi

# Scaffold a Vite react-ts app and its lockfile with Node 22 from the node base image (the host's
# Node may be too old for create-vite). npm's cache persists in $CACHE_DIR between runs.
NPM_CACHE="$CACHE_DIR/npm-cache"
mkdir -p "$NPM_CACHE" "$WORK/scaffold"
"${PODMAN_RUN[@]}" --rm -v "$WORK/scaffold:/w" -v "$NPM_CACHE:/npm-cache" -w /w "${NODE_CA[@]}" \
    -e npm_config_cache=/npm-cache -e npm_config_update_notifier=false -e npm_config_fund=false -e npm_config_audit=false \
    "$NODE_BASE" sh -c 'npx -y create-vite@latest app --template react-ts --no-interactive --no-immediate \
        && cd app && npm install --package-lock-only --no-audit --no-fund' >"$WORK/scaffold.log" 2>&1 \
    || { show_log "$WORK/scaffold.log"; die "scaffolding the Vite app failed"; }
APP="$WORK/scaffold/app"
[ -f "$APP/package.json" ] && [ -f "$APP/package-lock.json" ] || die "scaffold has no package.json/package-lock.json"
# The builder's starter: the template's package.json and lockfile, so the image's prebuilt tree
# matches and npm ci is skipped (deploy/runner/README.md, "Prebuilt dependencies").
cp deploy/runner/templates/vite-react-ts/package.json deploy/runner/templates/vite-react-ts/package-lock.json "$APP/"
vite_spec="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["devDependencies"]["vite"])' "$APP/package.json")"
log "runner: scaffolded Vite react-ts app (vite $vite_spec) with package-lock.json in $(since "$t")s"

# The app as a bare repo ci/app.git, served at https://git.test/ci/app with a token.
G=(git -c user.name=images-ci -c user.email=images-ci@example.invalid -c init.defaultBranch=main -c commit.gpgsign=false)
"${G[@]}" -C "$APP" init -q
"${G[@]}" -C "$APP" add -A
"${G[@]}" -C "$APP" commit -q -m "Vite react-ts app"
mkdir -p "$WORK/git/ci"
"${G[@]}" clone -q --bare "$APP" "$WORK/git/ci/app.git"

TLS="$WORK/tls"; mkdir -p "$TLS"
{
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=images-ci test CA" \
        -keyout "$TLS/ca.key" -out "$TLS/ca.pem" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$GIT_HOST" -keyout "$TLS/server.key" -out "$TLS/server.csr"
    printf 'subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' "$GIT_HOST" >"$TLS/ext.cnf"
    openssl x509 -req -in "$TLS/server.csr" -CA "$TLS/ca.pem" -CAkey "$TLS/ca.key" -CAcreateserial \
        -days 2 -extfile "$TLS/ext.cnf" -out "$TLS/server.pem"
} >"$WORK/openssl.log" 2>&1 || { show_log "$WORK/openssl.log"; die "making the test CA failed"; }
chmod 0644 "$TLS/ca.pem"

token="ci-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
# REPO_URL cannot carry a port, so the server takes 443 when it is free. Otherwise git is told,
# through GIT_CONFIG_* in the container's environment, to reach https://git.test/ on another port;
# the runner's token header is bound to https://git.test/ (port 443) and so is not sent there,
# and the server then runs without a token.
git_env=()
if python3 -c 'import socket; socket.socket().bind(("127.0.0.1", 443))' 2>/dev/null; then
    git_port=443
    server_token=(--token "$token")
else
    git_port=$(free_port)
    server_token=()
    git_env=(-e GIT_CONFIG_COUNT=1 -e "GIT_CONFIG_KEY_0=url.https://$GIT_HOST:$git_port/.insteadOf" -e "GIT_CONFIG_VALUE_0=https://$GIT_HOST/")
    log "runner: port 443 is taken; git server on $git_port via url.insteadOf, without token check"
fi
python3 "$HERE/git_https.py" --root "$WORK/git" --cert "$TLS/server.pem" --key "$TLS/server.key" \
    --port "$git_port" "${server_token[@]}" >"$WORK/git-https.out" 2>"$WORK/git-https.log" &
PIDS+=($!)
for _ in $(seq 1 50); do grep -q listening "$WORK/git-https.out" 2>/dev/null && break; sleep 0.1; done
code="$(curl -s -o /dev/null -w '%{http_code}' --cacert "$TLS/ca.pem" --resolve "$GIT_HOST:$git_port:127.0.0.1" \
    -u "x-access-token:$token" "https://$GIT_HOST:$git_port/ci/app/info/refs?service=git-upload-pack")" || true
[ "$code" = 200 ] || { show_log "$WORK/git-https.log"; die "git server: info/refs answered $code"; }
log "runner: https://$GIT_HOST/ci/app served on 127.0.0.1:$git_port (smart HTTP, TLS from a CA made for this run${server_token:+, token required})"

# The runner as production runs it: image entrypoint (tini -> node entrypoint.mjs), uid 10001.
RUNNER_NPM_CACHE="$CACHE_DIR/npm-cache-runner"
mkdir -p "$RUNNER_NPM_CACHE"
chown -R 10001:10001 "$RUNNER_NPM_CACHE"
app_port=$(free_port)
runner=images-ci-runner-$$
podman rm -f "$runner" >/dev/null 2>&1 || true
CONTAINERS+=("$runner")
t_run=$(date +%s.%N)
"${PODMAN_RUN[@]}" -d --name "$runner" --add-host "$GIT_HOST:127.0.0.1" \
    -v "$TLS/ca.pem:/ci/ca.pem:ro" -v "$RUNNER_NPM_CACHE:/ci/npm-cache" \
    -e REPO_URL="https://$GIT_HOST/ci/app" -e REPO_BRANCH=main -e ALLOWED_HOSTS="$GIT_HOST" \
    -e GIT_TOKEN="$token" -e PORT="$app_port" -e SYNC_INTERVAL=2s -e GIT_SSL_CAINFO=/ci/ca.pem \
    -e npm_config_cache=/ci/npm-cache "${NODE_CA[@]}" "${git_env[@]}" \
    "$RUNNER_TAG" >/dev/null || die "runner image: cannot start"

in_runner="$(podman exec "$runner" sh -c 'echo "$(id -u) $(cat /proc/1/comm)"')" || die "runner image: podman exec failed"
[ "${in_runner%% *}" = 10001 ] || die "runner image: runs as uid ${in_runner%% *}, want 10001"
[ "${in_runner#* }" = tini ] || die "runner image: PID 1 is ${in_runner#* }, want tini"
log "runner image: id -u = ${in_runner%% *}, PID 1 = ${in_runner#* }"

first=""
while python3 -c "import sys,time; sys.exit(0 if time.time() - $t_run < $RUNNER_DEADLINE else 1)"; do
    code="$(curl -s -o "$WORK/page.html" -w '%{http_code}' --max-time 5 "http://127.0.0.1:$app_port/" 2>/dev/null)" || code=000
    if [ "$code" = 200 ]; then first="$(python3 -c "import time; print(f'{time.time() - $t_run:.1f}')")"; break; fi
    [ "$(podman inspect -f '{{.State.Running}}' "$runner")" = true ] || break
    sleep 0.5
done
if [ -z "$first" ]; then
    podman logs "$runner" >"$WORK/runner.log" 2>&1; show_log "$WORK/runner.log" 60; show_log "$WORK/git-https.log" 10
    die "runner image: no HTTP 200 on port $app_port within ${RUNNER_DEADLINE}s (last: $code)"
fi
grep -q 'id="root"' "$WORK/page.html" || die "runner image: the 200 page is not the Vite app's index.html"
podman logs "$runner" >"$WORK/runner.log" 2>&1
grep -q 'matches the prebuilt tree of template vite-react-ts: checked out into /opt/prebuilt/.*, npm ci skipped' "$WORK/runner.log" \
    || { show_log "$WORK/runner.log"; die "runner image: the template's lockfile did not use the prebuilt tree"; }
log "runner image: first HTTP 200 from Vite's dev server ${first}s after start (clone, prebuilt tree: npm ci skipped, vite)"
if [ "${#server_token[@]}" -gt 0 ]; then
    grep -q 'POST /ci/app/git-upload-pack HTTP/1.1" 200' "$WORK/git-https.log" \
        || { show_log "$WORK/git-https.log"; die "git server: no authorized clone seen"; }
fi
if grep -q -- "$token" "$WORK/runner.log"; then die "runner image: GIT_TOKEN appears in the logs"; fi

podman stop -t 20 "$runner" >/dev/null
code="$(podman inspect -f '{{.State.ExitCode}}' "$runner")"
[ "$code" = 0 ] || { podman logs "$runner" >"$WORK/runner.log" 2>&1; show_log "$WORK/runner.log"; die "runner image: exit code $code after SIGTERM"; }
log "runner image: stopped by SIGTERM, exit code 0 (checks took $(since "$t")s)"

# Old versions of the images (now untagged) are not kept; the tagged images stay as the cache.
podman image prune -f >/dev/null 2>&1 || true
