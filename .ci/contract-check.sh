#!/usr/bin/env bash
# Contract check for the Fly Machines API client.
#
# Starts the project's simulator, puts Prism (a validating proxy for the official OpenAPI
# spec) in front of it, drives every FlyClient call through Prism with the ignored test
# `contract_through_prism` (tests/it/fly_client.rs), then fails if Prism reported any
# request/response violation that is not allow-listed in docs/contract-deviations.md.
#
# Environment (all optional):
#   FLY_OPENAPI_SPEC  spec file       (default /work/shared/reference/fly-machines-openapi.json)
#   PRISM_DIR         npm prefix for Prism (default target/prism)
#   PRISM_VERSION     @stoplight/prism-cli version (default 5.14.2)
#   SIM_PORT / PRISM_PORT   (default 4280 / 4010)
#   SIM_CMD           command that serves the simulator on 127.0.0.1:$SIM_PORT
#                     (default: target/debug/fly-sim ...)
#   CONTRACT_DEVIATIONS  allow-list file (default docs/contract-deviations.md)
#   KEEP_LOGS=1       keep the temporary log directory
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SPEC="${FLY_OPENAPI_SPEC:-/work/shared/reference/fly-machines-openapi.json}"
PRISM_DIR="${PRISM_DIR:-$ROOT/target/prism}"
PRISM_VERSION="${PRISM_VERSION:-5.14.2}"
SIM_PORT="${SIM_PORT:-4280}"
PRISM_PORT="${PRISM_PORT:-4010}"
DEVIATIONS="${CONTRACT_DEVIATIONS:-$ROOT/docs/contract-deviations.md}"
PRISM="$PRISM_DIR/node_modules/.bin/prism"
WORK="$(mktemp -d -t contract-check.XXXXXX)"
MIN_REQUESTS=20
PIDS=()

log() { printf '[contract-check] %s\n' "$*" >&2; }

cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ "${KEEP_LOGS:-0}" == 1 ]]; then log "logs kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

wait_for_port() { # port, seconds, pid
    local deadline=$((SECONDS + $2))
    until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
        kill -0 "$3" 2>/dev/null || { log "process $3 exited before listening on :$1"; return 1; }
        ((SECONDS < deadline)) || { log "nothing listening on :$1 after $2 s"; return 1; }
        sleep 0.2
    done
}

install_prism() {
    if [[ -x "$PRISM" ]] && [[ "$("$PRISM" --version 2>/dev/null)" == "$PRISM_VERSION" ]]; then return; fi
    log "installing @stoplight/prism-cli@$PRISM_VERSION into $PRISM_DIR"
    mkdir -p "$PRISM_DIR"
    npm install --prefix "$PRISM_DIR" --no-audit --no-fund --no-save --loglevel=error \
        "@stoplight/prism-cli@$PRISM_VERSION" >&2
}

start_simulator() {
    local cmd
    if [[ -n "${SIM_CMD:-}" ]]; then
        cmd="$SIM_CMD"
    else
        local bin="$ROOT/target/debug/fly-sim"
        if ! "$bin" --help >/dev/null 2>&1; then
            log "'$bin' is not available; build it (cargo build -p fly-sim) or set SIM_CMD"
            exit 2
        fi
        cmd="$bin --listen 127.0.0.1:$SIM_PORT --boot-time 300ms --check-delay 100ms"
    fi
    log "starting simulator: $cmd"
    # shellcheck disable=SC2086 # SIM_CMD is a command line
    $cmd >"$WORK/simulator.log" 2>&1 &
    PIDS+=("$!")
    wait_for_port "$SIM_PORT" 30 "$!"
}

# Prism matches request paths against the spec's paths without the server's `/v1` base
# path and appends the request path to the upstream URL. The client always calls
# `/v1/...`, so serve a copy of the spec whose paths carry the `/v1` prefix (content
# otherwise identical) and proxy to the simulator's root.
start_prism() {
    node -e '
        const fs = require("fs");
        const [src, dst, upstream] = process.argv.slice(1);
        const spec = JSON.parse(fs.readFileSync(src, "utf8"));
        spec.paths = Object.fromEntries(Object.entries(spec.paths).map(([p, v]) => ["/v1" + p, v]));
        spec.servers = [{ url: upstream }];
        fs.writeFileSync(dst, JSON.stringify(spec));
    ' "$SPEC" "$WORK/spec-v1.json" "http://127.0.0.1:$SIM_PORT"
    log "starting prism proxy on :$PRISM_PORT"
    "$PRISM" proxy "$WORK/spec-v1.json" "http://127.0.0.1:$SIM_PORT" \
        --errors=false --port "$PRISM_PORT" --host 127.0.0.1 >"$WORK/prism.log" 2>&1 &
    PIDS+=("$!")
    wait_for_port "$PRISM_PORT" 60 "$!"
}

# One line per violation: `METHOD /v1/path/{template} STATUS :: message`.
extract_violations() {
    sed 's/\x1b\[[0-9;]*m//g' "$WORK/prism.log" | awk '
        function template(p) {
            sub(/\?.*/, "", p)
            gsub(/\/apps\/[^\/]+/, "/apps/{app_name}", p)
            gsub(/\/machines\/[^\/]+/, "/machines/{machine_id}", p)
            gsub(/\/orgs\/[^\/]+/, "/orgs/{org_slug}", p)
            gsub(/\/ip_assignments\/[^\/]+/, "/ip_assignments/{ip}", p)
            return p
        }
        /\[HTTP SERVER\]/ && /Request received/ {
            for (i = 1; i <= NF; i++) if ($i == "SERVER]") { method = toupper($(i + 1)); path = template($(i + 2)) }
            status = "???"; requests++
        }
        /The upstream call to .* has returned [0-9]+/ { status = $NF }
        /Violation: / { print method " " path " " status " :: " substr($0, index($0, "Violation: ") + 11) }
        END { print requests + 0 > "/dev/stderr" }
    ' 2>"$WORK/request-count" | sort | uniq -c | sed 's/^ *//' >"$WORK/violations.txt"
}

check_violations() {
    local -a allow=()
    mapfile -t allow < <(sed -n 's/^- allow: `\([^`]*\)`.*/\1/p' "$DEVIATIONS")
    ((${#allow[@]} > 0)) || { log "no '- allow: \`regex\`' entries found in $DEVIATIONS"; return 1; }
    local -A used=()
    local unexpected=0 count key re matched
    while read -r count key; do
        matched=""
        for re in "${allow[@]}"; do
            if [[ "$key" =~ $re ]]; then matched="$re"; used["$re"]=1; break; fi
        done
        if [[ -n "$matched" ]]; then
            log "allowed  ($count×) $key"
        else
            log "VIOLATION ($count×) $key"
            unexpected=$((unexpected + 1))
        fi
    done <"$WORK/violations.txt"
    for re in "${allow[@]}"; do
        [[ -n "${used[$re]:-}" ]] || log "note: allow-list entry not exercised: $re"
    done
    return $((unexpected > 0))
}

main() {
    [[ -f "$SPEC" ]] || { log "spec not found: $SPEC"; exit 2; }
    install_prism
    log "building"
    cargo build --quiet -p fly-sim
    cargo test --quiet --test it --no-run
    start_simulator
    start_prism
    log "running contract_through_prism"
    local test_rc=0
    FLY_CONTRACT_URL="http://127.0.0.1:$PRISM_PORT" \
        cargo test --quiet --test it fly_client::contract_through_prism -- --ignored --exact \
        || test_rc=$?
    sleep 1 # let Prism flush its log
    extract_violations
    local requests
    requests="$(cat "$WORK/request-count")"
    log "prism saw $requests requests"
    local rc=0
    if ((test_rc != 0)); then log "FAIL: contract_through_prism failed"; rc=1; fi
    if ((requests < MIN_REQUESTS)); then log "FAIL: expected at least $MIN_REQUESTS proxied requests"; rc=1; fi
    if ! check_violations; then log "FAIL: violations not listed in docs/contract-deviations.md"; rc=1; fi
    if ((rc == 0)); then log "OK: client traffic matches the spec apart from documented deviations"; fi
    if ((rc != 0)); then KEEP_LOGS=1; fi
    return "$rc"
}

main "$@"
