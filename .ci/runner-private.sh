#!/usr/bin/env bash
# The preview runner with a private repository (local HTTPS git server requiring GIT_TOKEN's
# header: no, wrong, right and rotated token) and a private scoped package (a local Verdaccio
# that only signed-in users may read: without and with NPM_TOKEN), plus the canary sweep for
# both tokens. Prints `runner-private: <name>: <value>`. See .ci/runner_private.py.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CACHE_DIR="${CACHE_DIR:-/var/cache/fly-preview-ci}"
mkdir -p "$CACHE_DIR/runner-private"
# shellcheck source=.ci/runner-node22.sh
. "$ROOT/.ci/runner-node22.sh"
exec python3 "$ROOT/.ci/runner_private.py" --cache "$CACHE_DIR/runner-private" "$@"
