#!/usr/bin/env bash
# The daemon's periodic statements with N rows parked (quota-refused, due never) beside 10
# running previews: for each, the generic plan's shared buffers and execution time (EXPLAIN
# ANALYZE, BUFFERS, its second run) and the backend's CPU per call (/proc/<pid>/stat over
# CALLS calls, each in a rolled-back transaction). Schema and SQL from a checkout, so the same
# script measures two commits:
#   crates/bench/scripts/parked-statements.sh CHECKOUT ROWS [CALLS]
# Uses the local cluster (127.0.0.1:5432, user postgres) and database
# fly_preview_bench_parked_stmts (dropped and recreated). BENCHMARKS.md, "Parked rows".
set -euo pipefail
src=$1; rows=$2; calls=${3:-200}
db=fly_preview_bench_parked_stmts
psql() { command psql -h 127.0.0.1 -U postgres -X -q -v ON_ERROR_STOP=1 "$@"; }
psql -d postgres -c "drop database if exists $db" -c "create database $db" 2>/dev/null
for f in "$src"/migrations/*.sql; do psql -d $db -f "$f" >/dev/null 2>&1; done
psql -d $db <<SQL >/dev/null
UPDATE fly_preview_controller.settings SET max_rows_per_user = 0;
BEGIN;
INSERT INTO public.fly_preview_apps (user_id, project_id, github_repo_url, github_branch)
SELECT 'd20f481d-f7ac-4c72-8b42-c683320a6b6e', 'parked-' || g, 'https://github.com/o/r', 'main'
  FROM generate_series(1, $rows) g;
UPDATE public.fly_preview_apps SET status = 'error', status_reason = 'QuotaExceeded',
  error_message = 'quota', observed_generation = generation, attempts = 1, next_attempt_at = 'infinity'
 WHERE project_id::text LIKE 'parked-%' AND (SELECT set_config('fly_preview.controller', 'on', true)) IS NOT NULL;
COMMIT;
BEGIN;
INSERT INTO public.fly_preview_apps (user_id, project_id, github_repo_url, github_branch)
SELECT '5b0c7f3e-2a41-4d8e-9c6b-0e1f2a3b4c5d', 'live-' || g, 'https://github.com/o/r', 'main'
  FROM generate_series(0, 9) g;
UPDATE public.fly_preview_apps SET status = 'running', status_reason = 'Ready',
  observed_generation = generation, fly_machine_id = 'm-' || project_id, machine_state = 'started',
  fly_app_created = true, next_attempt_at = now() + interval '10 minutes',
  revision = CASE WHEN project_id::text = 'live-1' THEN 'abcdef1' END
 WHERE project_id::text LIKE 'live-%' AND (SELECT set_config('fly_preview.controller', 'on', true)) IS NOT NULL;
COMMIT;
SQL
# what the first reads after the change and autovacuum do
psql -d $db -c "VACUUM ANALYZE" >/dev/null
if psql -d $db -tAc "select to_regprocedure('fly_preview_controller.status_counts()') is not null" | grep -q t; then
  psql -d $db -c "select count(*) from fly_preview_controller.status_counts()" -c "VACUUM ANALYZE" >/dev/null
fi
list() { psql -d $db -tAc "select '{' || string_agg($1, ',') || '}' from public.fly_preview_apps where project_id::text like 'live-%'"; }
apps=$(list fly_app_name); ids=$(list fly_machine_id); stopped=$(list "'stopped'")
seen="'$apps', '$ids', '$stopped'"
byc="(SELECT pg_catalog.set_config('fly_preview.controller', 'on', true)) IS NOT NULL"
measure() { # name, parameter types, arguments
  local sql; sql=$(sed -e "s/{by_controller}/$byc/" "$src/src/store/sql/$1.sql" | grep -v '^--')
  local script; script=$(
    echo "SET plan_cache_mode = force_generic_plan;"
    echo "PREPARE s $2 AS $sql;"
    echo "SELECT pg_backend_pid() AS pid \\gset"
    echo "\\setenv PGPID :pid"
    echo "BEGIN; EXECUTE s $3; ROLLBACK;"
    echo "BEGIN; EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE s $3; ROLLBACK;"
    echo "\\! awk '{print \$14 + \$15}' /proc/\$PGPID/stat > /tmp/$db.cpu0"
    for _ in $(seq "$calls"); do echo "BEGIN; EXECUTE s $3; ROLLBACK;"; done
    echo "\\! awk '{print \$14 + \$15}' /proc/\$PGPID/stat > /tmp/$db.cpu1")
  local plan; plan=$(echo "$script" | psql -d $db -tA 2>&1 | tr -d "\n")
  local ticks=$(( $(cat /tmp/$db.cpu1) - $(cat /tmp/$db.cpu0) ))
  python3 - "$1" "$plan" "$ticks" "$calls" <<'PY'
import json, re, sys
name, text, ticks, calls = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
plan = json.JSONDecoder().raw_decode(text[re.search(r"\[\s*\{", text).start():])[0][0]
top = plan["Plan"]
def scans(n, out):
    if "Relation Name" in n: out.append(f'{n["Node Type"]} on {n["Relation Name"]}')
    for c in n.get("Plans", []): scans(c, out)
    return out
bufs = top["Shared Hit Blocks"] + top["Shared Read Blocks"]
cpu = ticks * 10.0 / calls  # ms per call (ticks are 10 ms)
print(f'| `{name}` | {bufs} | {plan["Execution Time"]:.2f} ms | {cpu:.2f} ms | {", ".join(sorted(set(scans(top, []))))} |')
PY
}
echo "| statement | shared buffers | execution | backend CPU per call | scans |"
echo "|---|---|---|---|---|"
measure stats "(text)" "('error')"
measure mark_due "(text[], text[], text[], text, text, text, text[], text, text[])" \
  "($seen, 'running', 'stopped', 'error', '{stopped}', 'started', '{MachineExited}')"
measure note_sleep "(text[], text[], text[], text, text[], text, text, text)" \
  "('$apps', '$ids', '{suspended,suspended,suspended,suspended,suspended,suspended,suspended,suspended,suspended,suspended}', 'running', '{suspended,started}', 'started', 'Ready', 'Idle')"
if grep -q '\$3' "$src/src/store/sql/sync_candidates.sql"; then
  measure sync_candidates "(text, text, bigint)" "('running', 'started', 16)"
else
  measure sync_candidates "(bigint)" "(16)"
fi
measure fleet/by_state "" ""
psql -d postgres -c "drop database $db"
