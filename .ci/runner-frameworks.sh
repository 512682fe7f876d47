#!/usr/bin/env bash
# The preview runner on real scaffolded projects (create-vite, create-next-app, ng new, sv create,
# an npm-workspaces monorepo, a plain node server), each reached on the machine's non-loopback
# address as Fly's proxy reaches it; hot reload proven in headless Chromium (Debian's package)
# through a TLS stand-in for Fly's proxy; supervision (SIGKILL, SIGSTOP, crash loop -> exit 7)
# and an install failure that names its cause. Prints `runner-frameworks: <name>: <value>`.
# See .ci/runner_frameworks.py.
#
# Cache (kept between runs, shared with .ci/runner-e2e.sh): $CACHE_DIR/runner-e2e holds
# <project>-app.tar.gz (scaffolds; RESCAFFOLD=1 makes them anew), npm-cache-e2e/ and node22/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CACHE_DIR="${CACHE_DIR:-/var/cache/fly-preview-ci}"
mkdir -p "$CACHE_DIR/runner-e2e"
# shellcheck source=.ci/runner-node22.sh
. "$ROOT/.ci/runner-node22.sh"
command -v chromium >/dev/null 2>&1 || { echo "runner-frameworks: chromium missing (bash .ci/install-tools.sh)" >&2; exit 1; }
exec python3 "$ROOT/.ci/runner_frameworks.py" --cache "$CACHE_DIR/runner-e2e" "$@"
