#!/usr/bin/env bash
# A leader cut off from the database without its connection being closed (a partition or a
# frozen host, not a killed process): how long until the other replica leads, and until the
# cut-off one notices it no longer does (the split-brain window). Two release daemons against
# the simulator and the local cluster; the cut is iptables dropping every packet of the
# leader's leadership connection on the loopback (needs root), so neither end sees a reset
# and only the server's TCP keepalives and the leader's own check can end it.
#   crates/bench/scripts/partition-leader.sh [ROUNDS] [LEADER_TTL]
# Uses target/release/{fly-preview-controller,fly-sim} (cargo build --release --workspace)
# and database fly_preview_bench_partition (dropped and recreated). BENCHMARKS.md,
# "A partitioned leader".
set -euo pipefail
rounds=${1:-3}; ttl=${2:-60s}
bin=target/release; db=fly_preview_bench_partition
url="postgres://postgres@127.0.0.1:5432/$db"
psql() { command psql -h 127.0.0.1 -U postgres -X -q -tA -v ON_ERROR_STOP=1 "$@"; }
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
work=$(mktemp -d); rules=(); pids=()
cleanup() {
  for r in "${rules[@]}"; do iptables -D INPUT $r 2>/dev/null || true; done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

psql -d postgres -c "drop database if exists $db" -c "create database $db" >/dev/null
DATABASE_URL=$url $bin/fly-preview-controller migrate >/dev/null
sim=$(port); $bin/fly-sim --listen "127.0.0.1:$sim" >"$work/sim.log" 2>&1 & pids+=($!)

declare -A admin
start() { # name: a replica on its own admin port, logs in $work/<name>.log
  admin[$1]=$(port)
  DATABASE_URL=$url FLY_API_TOKEN=bench LEADER_TTL=$ttl $bin/fly-preview-controller run \
    --fly-api-url "http://127.0.0.1:$sim" --fly-org personal \
    --listen-addr "127.0.0.1:${admin[$1]}" >"$work/$1.log" 2>&1 & pids+=($!)
}
leads() { # name -> 1 while it leads, 0 otherwise (or unreachable)
  curl -sf "http://127.0.0.1:${admin[$1]}/metrics" 2>/dev/null \
    | awk '$1 == "fly_preview_leader" {print $2; found=1} END {if (!found) print 0}'
}
until_leads() { # name value
  until [ "$(leads "$1")" = "$2" ]; do sleep 0.05; done
}
now() { date +%s.%N; }
# The backend holding the leadership lock and its client port (the replica's end).
holder() {
  psql -d $db -c "select l.pid, a.client_port from pg_locks l join pg_stat_activity a using (pid)
    where l.locktype = 'advisory' and l.granted and l.objsubid = 1
      and l.database = (select oid from pg_database where datname = current_database())
      and ((l.classid::bigint << 32) | l.objid::bigint) = x'666c795f70726576'::bigint" | tr '|' ' '
}

start a; until_leads a 1
start b; sleep 2
leader=a; follower=b
echo "LEADER_TTL $ttl; $rounds rounds; logs in $work"
for i in $(seq "$rounds"); do
  read -r pid cport < <(holder)
  # Sometime within the leader's check period, like a real partition.
  sleep "$(python3 -c "import random; print(round(random.uniform(0, 5), 2))")"
  rules=("-i lo -p tcp --sport $cport -j DROP" "-i lo -p tcp --dport $cport -j DROP")
  for r in "${rules[@]}"; do iptables -I INPUT $r; done
  cut=$(now)
  until_leads "$follower" 1; moved=$(now)
  until_leads "$leader" 0; noticed=$(now)
  gone=$(psql -d $db -c "select count(*) = 0 from pg_stat_activity where pid = $pid")
  python3 - "$i" "$leader" "$follower" "$pid" "$cut" "$moved" "$noticed" "$gone" <<'PY'
import sys
i, old, new, pid = sys.argv[1:5]
cut, moved, noticed = map(float, sys.argv[5:8])
print(f"round {i}: cut {old}'s leadership connection (backend {pid}); {new} led after "
      f"{moved - cut:.1f} s; {old} noticed after {noticed - cut:.1f} s; both led for "
      f"{max(0.0, noticed - moved):.1f} s; the cut backend gone: {sys.argv[8]}")
PY
  for r in "${rules[@]}"; do iptables -D INPUT $r; done
  rules=()
  tmp=$leader; leader=$follower; follower=$tmp
  sleep 3
done
