#!/usr/bin/env bash
# The preview runner end to end on a real Vite react-ts project, in CI:
# scaffolded with create-vite, served over a local HTTPS git server, run with Node 22. Checks the
# first 200 (Host: localhost), source pushes without a dev-server restart (`sync` and the
# fallback), a dependency change with its downtime measured, a hung install (exit 6) and a
# missing script (exit 4). Prints `runner-e2e: <name>: <value>`. See .ci/runner_e2e.py.
#
# Cache (kept between runs): $CACHE_DIR (default /var/cache/fly-preview-ci) holds
# vite-app.tar.gz (the scaffold with its package-lock.json; RESCAFFOLD=1 makes it anew),
# npm-cache-e2e/ (npm's cache: warm installs need no download) and node22/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CACHE_DIR="${CACHE_DIR:-/var/cache/fly-preview-ci}"
mkdir -p "$CACHE_DIR/runner-e2e"
# shellcheck source=.ci/runner-node22.sh
. "$ROOT/.ci/runner-node22.sh"
exec python3 "$ROOT/.ci/runner_e2e.py" --project vite --cache "$CACHE_DIR/runner-e2e" --prefix runner-e2e \
    --max-downtime "${MAX_DOWNTIME:-15}" "$@"
