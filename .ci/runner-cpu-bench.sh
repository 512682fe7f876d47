#!/usr/bin/env bash
# The runner image on the CPU Fly gives, for BENCHMARKS.md ("Runner on Fly's CPU"); not in CI
# (a shared-vCPU case with a cold balance takes minutes). Root; podman as in .ci/images/run.sh.
#
#   bash .ci/runner-cpu-bench.sh [--projects vite,next,sveltekit] [--cpus shared,1,2] [--burst 0]
#
# Builds the runner image of BEFORE_REF (default main; `git archive` of deploy/runner) as
# localhost/fly-preview-runner:bench-before and of this checkout as :bench-after (build arg
# RUNNER_TEMPLATES, default the shipped templates.json), then runs .ci/runner_cpu_bench.py on both
# (IMAGES=after to skip the before image). Scaffolds come from $CACHE_DIR/runner-e2e (filled by
# .ci/runner-e2e.sh / runner-frameworks.sh, or made here on first use); the runners share one npm
# cache ($CACHE_DIR/npm-cache-cpu-bench: downloads are not what is measured). Results: JSON rows
# in ${OUT:-/tmp/runner-cpu-bench.json} and `runner-cpu-bench:` lines.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export CACHE_DIR="${CACHE_DIR:-/var/cache/fly-preview-ci}"
BEFORE_REF="${BEFORE_REF:-main}"
IMAGES="${IMAGES:-before,after}"
log() { printf 'runner-cpu-bench: %s\n' "$*"; }
[ "$(id -u)" -eq 0 ] || { log "run as root"; exit 1; }
bash .ci/images/bases.sh >/dev/null
# shellcheck source=.ci/runner-node22.sh
. "$ROOT/.ci/runner-node22.sh"
mkdir -p "$CACHE_DIR/runner-e2e" "$CACHE_DIR/npm-cache-cpu-bench"
chown -R 10001:10001 "$CACHE_DIR/npm-cache-cpu-bench"
python3 - "$CACHE_DIR/runner-e2e" <<'PY'
import os, sys, tempfile
sys.path.insert(0, ".ci")
from runner_e2e import scaffold
for p in ("vite", "next", "sveltekit"):
    if not os.path.exists(os.path.join(sys.argv[1], f"{p}-app.tar.gz")):
        scaffold(p, sys.argv[1], tempfile.mkdtemp(prefix="cpu-bench-scaffold."), dict(os.environ))
PY

host_ca="$(readlink -f "${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}")"
BUILD=(podman build --isolation=chroot --network=host -v "$host_ca:/ci/host-ca.pem:ro" --build-arg NODE_EXTRA_CA_CERTS=/ci/host-ca.pem)
images=()
if [[ ",$IMAGES," == *",before,"* ]]; then
    ctx="$(mktemp -d /tmp/cpu-bench-before.XXXXXX)"
    git archive "$BEFORE_REF" deploy/runner | tar -x -C "$ctx"
    t=$(date +%s)
    "${BUILD[@]}" -t localhost/fly-preview-runner:bench-before -f "$ctx/deploy/runner/Dockerfile" "$ctx/deploy/runner" >/tmp/cpu-bench-build-before.log 2>&1
    log "image before ($BEFORE_REF $(git rev-parse --short "$BEFORE_REF")) built in $(($(date +%s) - t))s, $(podman image inspect -f '{{.Size}}' localhost/fly-preview-runner:bench-before | numfmt --to=si)B"
    rm -rf "$ctx"
    images+=(--image before=localhost/fly-preview-runner:bench-before)
fi
if [[ ",$IMAGES," == *",after,"* ]]; then
    t=$(date +%s)
    "${BUILD[@]}" -t localhost/fly-preview-runner:bench-after ${RUNNER_TEMPLATES:+--build-arg "RUNNER_TEMPLATES=$RUNNER_TEMPLATES"} \
        -f deploy/runner/Dockerfile deploy/runner >/tmp/cpu-bench-build-after.log 2>&1
    log "image after ($(git rev-parse --short HEAD)$(git diff --quiet || echo +dirty)) built in $(($(date +%s) - t))s, $(podman image inspect -f '{{.Size}}' localhost/fly-preview-runner:bench-after | numfmt --to=si)B"
    images+=(--image after=localhost/fly-preview-runner:bench-after)
fi

nofile=$(ulimit -Hn)
if [ "$nofile" = unlimited ] || [ "$nofile" -gt 65536 ]; then nofile=65536; fi
run_prefix=""
for nproc in 65536 32768 16384 8192 4096; do
    cand="podman --runtime runc run --network=host --ulimit nofile=$nofile:$nofile --ulimit nproc=$nproc:$nproc"
    if $cand --rm docker.io/library/debian:bookworm-slim true >/dev/null 2>&1; then run_prefix="$cand"; break; fi
done
[ -n "$run_prefix" ] || { log "cannot run a container with podman"; exit 1; }
log "host: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
exec python3 .ci/runner_cpu_bench.py "${images[@]}" --cache "$CACHE_DIR/runner-e2e" \
    --npm-cache "$CACHE_DIR/npm-cache-cpu-bench" --podman-run "$run_prefix" --out "${OUT:-/tmp/runner-cpu-bench.json}" "$@"
