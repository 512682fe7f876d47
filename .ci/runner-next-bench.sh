#!/usr/bin/env bash
# The preview runner on a real Next.js app, for BENCHMARKS.md ("Runner on real
# projects"); not in CI (a cold run downloads Next and takes minutes). Same checks as
# .ci/runner-e2e.sh on an app scaffolded with create-next-app (App Router, TypeScript, npm),
# plus install time and the peak memory (PSS / RSS) of the runner's process tree from /proc.
# Prints `runner-next-bench: <name>: <value>`. Cache: $CACHE_DIR/runner-e2e/next-app.tar.gz and
# the npm cache shared with .ci/runner-e2e.sh (COLD=1: an empty npm cache for this run).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CACHE_DIR="${CACHE_DIR:-/var/cache/fly-preview-ci}"
mkdir -p "$CACHE_DIR/runner-e2e"
# shellcheck source=.ci/runner-node22.sh
. "$ROOT/.ci/runner-node22.sh"
exec python3 "$ROOT/.ci/runner_e2e.py" --project next --cache "$CACHE_DIR/runner-e2e" --prefix runner-next-bench \
    --start-deadline 600 --max-downtime "${MAX_DOWNTIME:-60}" "$@"
