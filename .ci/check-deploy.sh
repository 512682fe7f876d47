#!/usr/bin/env bash
# Checks the deployment and observability artifacts:
#   deploy/prometheus (alert rules + promtool unit tests), deploy/grafana (dashboard JSON),
#   charts/fly-preview-controller (lint, render, schema-validate, policy, negative cases),
#   deploy/Dockerfile and deploy/fly.toml (static checks).
# Needs the tools from .ci/install-tools.sh. Exit status: 0 all passed, 1 a check failed,
# 3 a tool is missing (tests/it/deploy_artifacts.rs turns 3 into SKIP locally, a failure in CI).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
VENV="${VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"
CHART=charts/fly-preview-controller
RENDER="$CHART/ci/render.py"
PROD_VALUES="$CHART/ci/production-values.yaml"
DASH=deploy/grafana/fly-preview-controller.json
ALERTS=deploy/prometheus/alerts.yaml

# ---- tools --------------------------------------------------------------------------------------
missing=()
for t in promtool yamllint jq; do command -v "$t" >/dev/null 2>&1 || missing+=("$t"); done
if [ ! -x "$PY" ] || ! "$PY" -c 'import helm_python, kubernetes_validate, yaml' >/dev/null 2>&1; then
    missing+=("$VENV (helm-python-sdk, kubernetes-validate)")
fi
if [ "${#missing[@]}" -gt 0 ]; then
    echo "check-deploy: missing tools: ${missing[*]}"
    echo "check-deploy: run .ci/install-tools.sh first"
    exit 3
fi

passed=0
failed=0
failures=()
LOG="$(mktemp)"
trap 'rm -f "$LOG"' EXIT

# step NAME CMD...: run CMD, print one line, show its output only when it fails.
step() {
    local name="$1"; shift
    if "$@" >"$LOG" 2>&1; then
        passed=$((passed + 1))
        printf 'ok    %s\n' "$name"
    else
        failed=$((failed + 1))
        failures+=("$name")
        printf 'FAIL  %s\n' "$name"
        sed 's/^/      | /' "$LOG"
    fi
}

# ---- YAML ---------------------------------------------------------------------------------------
# Helm templates are not YAML until rendered, so only plain YAML files are linted.
YAMLLINT_CONFIG='{extends: default, rules: {line-length: {max: 140}, document-start: disable,
  truthy: {check-keys: false}, comments: {min-spaces-from-content: 1},
  indentation: {spaces: 2, indent-sequences: consistent}}}'
yaml_files=(deploy/prometheus/*.yaml "$CHART/Chart.yaml" "$CHART/values.yaml" "$CHART"/ci/*.yaml "$CHART/files/alerts.yaml")
step "yamllint (${#yaml_files[@]} files)" yamllint --strict -d "$YAMLLINT_CONFIG" "${yaml_files[@]}"

# ---- Prometheus rules ---------------------------------------------------------------------------
step "promtool check rules $ALERTS" promtool check rules "$ALERTS"
step "promtool test rules deploy/prometheus/alerts_test.yaml" promtool test rules deploy/prometheus/alerts_test.yaml
step "every alert has a promtool test" bash -c '
    for a in $(sed -n "s/^ *- alert: *//p" "$1"); do
        grep -q "alertname: $a\$" "$2" || { echo "no test for $a"; exit 1; }
    done' _ "$ALERTS" deploy/prometheus/alerts_test.yaml
step "chart copy $CHART/files/alerts.yaml is identical" cmp "$ALERTS" "$CHART/files/alerts.yaml"

# ---- Grafana dashboard --------------------------------------------------------------------------
step "dashboard is valid JSON" jq -e . "$DASH"
step "dashboard: uid, title, tags, schemaVersion" jq -e '
    .uid == "fly-preview-controller" and (.title | length > 0) and (.tags | length > 0)
    and .schemaVersion >= 36 and .id == null' "$DASH"
step "dashboard: DS_PROMETHEUS datasource variable, job and instance variables" jq -e '
    (.templating.list | map(select(.name == "DS_PROMETHEUS" and .type == "datasource" and .query == "prometheus")) | length == 1)
    and (.templating.list | map(.name) | index("job") != null and index("instance") != null)
    and ([.templating.list[] | select(.type == "query") | .datasource.uid == "${DS_PROMETHEUS}"] | all)' "$DASH"
step "dashboard: every panel and target uses \${DS_PROMETHEUS}" bash -c '
    bad=$(jq -r "[.panels[], (.panels[] | .panels? // [] | .[])] | map(select(.type != \"row\"))
        | map(select(.datasource.uid != \"\${DS_PROMETHEUS}\" or .datasource.type != \"prometheus\"
                     or (.targets | length) == 0
                     or ([.targets[] | select(.datasource.uid != \"\${DS_PROMETHEUS}\" or (.expr | length) == 0)] | length) > 0))
        | .[].title" "$1")
    [ -z "$bad" ] || { echo "panels with a wrong datasource or empty targets:"; echo "$bad"; exit 1; }' _ "$DASH"
step "dashboard: unique panel ids, no other \${DS_*} inputs" jq -e '
    ([.panels[].id] | length == (unique | length))
    and ([.. | strings | select(test("\\$\\{DS_") and (test("\\$\\{DS_PROMETHEUS\\}") | not))] | length == 0)' "$DASH"
step "dashboard: panels do not overlap" "$PY" - "$DASH" <<'EOF'
import json, sys
panels = json.load(open(sys.argv[1]))["panels"]
cells = {}
for p in panels:
    g = p["gridPos"]
    assert g["x"] + g["w"] <= 24, f"{p['title']} is wider than the grid"
    for x in range(g["x"], g["x"] + g["w"]):
        for y in range(g["y"], g["y"] + g["h"]):
            assert (x, y) not in cells, f"{p['title']} overlaps {cells[(x, y)]}"
            cells[(x, y)] = p["title"]
EOF
# promtool parses every dashboard query (Grafana variables substituted) as a recording rule:
# an offline PromQL syntax check for what Grafana would otherwise only report at view time.
step "dashboard: every query is valid PromQL (promtool)" "$PY" - "$DASH" <<'EOF'
import json, re, subprocess, sys, tempfile
import yaml
dash = json.load(open(sys.argv[1]))
exprs = [t["expr"] for p in dash["panels"] if p.get("type") != "row" for t in p.get("targets", [])]
for v in dash["templating"]["list"]:
    if v.get("type") == "query":
        q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        exprs.append(re.fullmatch(r"label_values\((.*),[^,]*\)", q).group(1))
subst = {"$__rate_interval": "1m", "$__interval": "1m", "$job": ".*", "$instance": ".*"}
rules = []
for n, e in enumerate(exprs):
    for k, v in subst.items():
        e = e.replace(k, v)
    assert "$" not in e, f"unsubstituted variable in {e}"
    rules.append({"record": f"dashboard:query_{n}", "expr": e})
with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
    yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)
    f.flush()
    sys.exit(subprocess.run(["promtool", "check", "rules", f.name]).returncode)
EOF
step "chart copy $CHART/files/fly-preview-controller.json is identical" cmp "$DASH" "$CHART/files/fly-preview-controller.json"

# ---- Helm chart ---------------------------------------------------------------------------------
step "helm lint (default values)" "$PY" "$RENDER" lint
step "helm lint ($PROD_VALUES)" "$PY" "$RENDER" lint -f "$PROD_VALUES"
step "render + kubernetes-validate + policy (default values)" "$PY" "$RENDER" validate
step "render + kubernetes-validate + policy ($PROD_VALUES)" "$PY" "$RENDER" validate -f "$PROD_VALUES"
step "render with an IPv6 listen host" "$PY" "$RENDER" validate --set-json '{"config": {"listenHost": "::"}}'
step "schema rejects replicaCount: 2" "$PY" "$RENDER" reject --set-json '{"replicaCount": 2}' --match replicaCount
step "schema rejects a malformed duration" "$PY" "$RENDER" reject --set-json '{"config": {"pollInterval": "soon"}}' --match pollInterval
step "schema rejects secrets in extraEnv" "$PY" "$RENDER" reject --set-json '{"extraEnv": [{"name": "FLY_API_TOKEN", "value": "x"}]}' --match extraEnv
step "schema rejects unknown top-level values" "$PY" "$RENDER" reject --set-json '{"replicas": 1}' --match replicas
step "no Secret source at all is rejected" "$PY" "$RENDER" reject --set-json '{"secret": {"create": false}}' --match existingSecret

# ---- Dockerfile and fly.toml --------------------------------------------------------------------
step "deploy/Dockerfile: stages, non-root user, entrypoint, context, no simulator" "$PY" - <<'EOF'
import json, re
from pathlib import Path
text = Path("deploy/Dockerfile").read_text()
lines = [l.strip() for l in re.sub(r"\\\n", " ", text).splitlines() if l.strip() and not l.strip().startswith("#")]
ins = [(l.split(None, 1)[0].upper(), l.split(None, 1)[1] if " " in l else "") for l in lines]
args = dict(a.split("=", 1) for i, a in ins if i == "ARG" and "=" in a)
froms = [re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), a) for i, a in ins if i == "FROM"]
assert froms[0].startswith("rust:1.95-bookworm"), froms[0]
assert len(froms) >= 2, "multi-stage build expected"
assert "bookworm-slim" in froms[-1] or "distroless" in froms[-1], froms[-1]
last = max(k for k, (i, _) in enumerate(ins) if i == "FROM")
final = ins[last:]
users = [a for i, a in final if i == "USER"]
assert users and users[-1].split(":")[0] not in ("root", "0"), "final stage must run as a non-root USER"
assert users[-1].split(":")[0].isdigit(), "use a numeric USER so runAsNonRoot can verify it"
get = lambda k: [a for i, a in final if i == k]
assert json.loads(get("ENTRYPOINT")[-1]) == ["fly-preview-controller"], get("ENTRYPOINT")
assert json.loads(get("CMD")[-1]) == ["run"], get("CMD")
assert "8080" in get("EXPOSE")[-1].split(), get("EXPOSE")
# the production binary is built without the `demo` feature (the embedded Fly API simulator)
builds = [a for i, a in ins if i == "RUN" and "cargo build" in a]
assert builds and all("--no-default-features" in b for b in builds), "cargo build in the image needs --no-default-features"
# everything COPY'd from the context exists and passes the .dockerignore whitelist
ignore = Path("deploy/Dockerfile.dockerignore").read_text().split()
allowed = [p[1:].rstrip("/") for p in ignore if p.startswith("!")]
for i, a in ins:
    if i == "COPY" and not a.startswith("--from"):
        for src in a.split()[:-1]:
            assert Path(src).exists(), f"COPY source {src} does not exist"
            assert src.rstrip("/") in allowed, f"COPY source {src} is excluded by Dockerfile.dockerignore"
print("ok")
EOF
if command -v cargo >/dev/null 2>&1; then
    # The Dockerfile builds with --locked: Cargo.lock must be current for the workspace's
    # manifests alone (checked on a copy with stub sources, as the manifests are all that counts).
    step "Cargo.lock current for the Dockerfile's --locked build: cargo metadata --locked" bash -c '
        tmp=$(mktemp -d); trap "rm -rf $tmp" EXIT
        cp Cargo.toml Cargo.lock "$tmp/" && mkdir -p "$tmp/src" "$tmp/migrations"
        echo "fn main() {}" > "$tmp/src/main.rs" && : > "$tmp/src/lib.rs"
        for m in crates/*/Cargo.toml; do
            d="$tmp/$(dirname "$m")"; mkdir -p "$d/src" && cp "$m" "$d/"
            echo "fn main() {}" > "$d/src/main.rs" && : > "$d/src/lib.rs"
        done
        cargo metadata --locked --format-version 1 --manifest-path "$tmp/Cargo.toml" >/dev/null'
fi
step "deploy/fly.toml: worker config, check on /healthz, metrics, no secrets" "$PY" - <<'EOF'
import tomllib
from pathlib import Path
cfg = tomllib.loads(Path("deploy/fly.toml").read_text())
assert cfg.get("app"), "app name placeholder missing"
assert (Path("deploy") / cfg["build"]["dockerfile"]).is_file(), "build.dockerfile must point at deploy/Dockerfile"
assert "http_service" not in cfg and "services" not in cfg, "the controller is a worker: no public service"
env = cfg["env"]
for secret in ("DATABASE_URL", "FLY_API_TOKEN", "FLY_IO_API_TOKEN"):
    assert secret not in env, f"{secret} must be a fly secret, not [env]"
for key in ("FLY_ORG", "APP_PREFIX", "FLY_API_URL", "LISTEN_ADDR", "LOG_FORMAT", "RUNNER_IMAGE"):
    assert key in env, f"[env] lacks {key}"
port = int(env["LISTEN_ADDR"].rsplit(":", 1)[1])
checks = cfg["checks"]
assert any(c.get("type") == "http" and c.get("path") == "/healthz" and c.get("port") == port
           for c in checks.values()), "need an http machine check on /healthz"
assert cfg["metrics"] == {"port": port, "path": "/metrics"}, cfg["metrics"]
assert cfg.get("vm"), "[[vm]] size missing"
print("ok")
EOF

# ---- summary ------------------------------------------------------------------------------------
echo
if [ "$failed" -gt 0 ]; then
    echo "check-deploy: failed checks: ${failures[*]}"
fi
echo "check-deploy: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
