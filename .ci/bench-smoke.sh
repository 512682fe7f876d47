#!/usr/bin/env bash
# Bench smoke run: a small fleet through the real daemon and the simulator, a tiny baseline.
# Fails (non-zero) if the bench errors or any fleet does not converge. Uses the debug build
# (CI builds it for the tests anyway) and its own database, fly_preview_bench_smoke.
# Full runs and their figures: BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
cargo build --quiet --bin fly-preview-controller --bin fly-preview-bench
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
started=$(date +%s)
target/debug/fly-preview-bench \
    --db-name fly_preview_bench_smoke \
    --rows 50 \
    --steady-window 2s \
    --wake-samples 5 \
    --baseline-budget 3s \
    --no-abuse \
    --converge-budget 60s \
    --fail-unconverged >"$out"
grep -q '^| 50 | yes |' "$out" || { cat "$out"; echo "bench-smoke: the fleet did not converge" >&2; exit 1; }
grep -q '^### Targets' "$out" || { cat "$out"; echo "bench-smoke: no report" >&2; exit 1; }
echo "bench-smoke: ok in $(( $(date +%s) - started )) s"

# Sync on save: a few saves against the simulator, every one confirmed.
started=$(date +%s)
target/debug/fly-preview-bench --db-name fly_preview_bench_smoke --saves 10 --save-rows 5 >"$out"
grep -q ' 10 confirmed, 0 missing;' "$out" || { cat "$out"; echo "bench-smoke: saves not confirmed" >&2; exit 1; }
echo "bench-smoke: saves ok in $(( $(date +%s) - started )) s"
