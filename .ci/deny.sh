#!/usr/bin/env bash
# Supply-chain check of the workspace against deny.toml with cargo-deny (installed by
# .ci/install-tools.sh). What runs depends on whether the RustSec advisory database
# (git clone of https://github.com/RustSec/advisory-db into ~/.cargo/advisory-dbs) can be fetched:
#
#   fetched                 cargo deny check                          (advisories, incl. yanked
#                                                                      crates, bans, licenses, sources)
#   not fetched, old copy   cargo deny --offline check                (all four against that copy,
#                                                                      its date printed; no yanked check)
#   not fetched, no copy    cargo deny check bans licenses sources    (advisories NOT checked; said so)
#
# Exit status: cargo-deny's (0 = every check that ran passed). Prints `deny: ...` lines.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
log() { printf 'deny: %s\n' "$*"; }

command -v cargo-deny >/dev/null 2>&1 || { log "cargo-deny missing: run bash .ci/install-tools.sh"; exit 1; }
log "$(cargo deny --version)"

DB_ROOT="${CARGO_HOME:-$HOME/.cargo}/advisory-dbs"
if fetch_err="$(cargo deny fetch db 2>&1)"; then
    log "advisory database fetched: checking advisories, bans, licenses, sources"
    cargo deny check
    exit $?
fi
why="$(printf '%s\n' "$fetch_err" | grep -m1 '^fatal' || printf '%s\n' "$fetch_err" | grep -m1 ERROR || printf '%s\n' "$fetch_err" | tail -n1)"
log "advisory database not fetched: $why"

copy="$(find "$DB_ROOT" -mindepth 2 -maxdepth 2 -name .git -printf '%h\n' 2>/dev/null | head -n1)"
if [ -n "$copy" ]; then
    log "using the copy in $copy (last commit $(git -C "$copy" log -1 --format=%cs 2>/dev/null || echo unknown)), offline"
    cargo deny --offline check
    exit $?
fi

log "advisories NOT checked (no copy of the database in $DB_ROOT); checking bans, licenses, sources"
cargo deny check bans licenses sources
