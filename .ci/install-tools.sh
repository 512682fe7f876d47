#!/usr/bin/env bash
# Installs the tools that .ci/check-deploy.sh, .ci/deny.sh (and the end-to-end tests) need:
#   - promtool + prometheus (Debian package `prometheus`), yamllint, jq   -> system (apt)
#   - chromium (Debian's package; .ci/runner-frameworks.sh's hot-reload check) -> system (apt)
#   - helm-python-sdk, kubernetes-validate                              -> project venv .venv
#   - cargo-deny (crates.io, `cargo install --locked`)                  -> $CARGO_HOME/bin
# Idempotent and fast when everything is already there. Safe for CI (root, CI=true, no stdin).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
HELM_PYTHON_SDK_VERSION="0.2.2"
KUBERNETES_VALIDATE_VERSION="1.37.0"
CARGO_DENY_VERSION="0.20.2"

export DEBIAN_FRONTEND=noninteractive
installed=()

log() { printf 'install-tools: %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"; else
        log "need root (or passwordless sudo) to run: $*"; return 1
    fi
}

# --- Debian packages ----------------------------------------------------------------------------
apt_pkgs=()
command -v promtool >/dev/null 2>&1 || apt_pkgs+=(prometheus)
command -v prometheus >/dev/null 2>&1 || { [[ " ${apt_pkgs[*]-} " == *" prometheus "* ]] || apt_pkgs+=(prometheus); }
command -v yamllint >/dev/null 2>&1 || apt_pkgs+=(yamllint)
command -v jq >/dev/null 2>&1 || apt_pkgs+=(jq)
command -v chromium >/dev/null 2>&1 || apt_pkgs+=(chromium)

if [ "${#apt_pkgs[@]}" -gt 0 ]; then
    log "apt: installing ${apt_pkgs[*]}"
    apt_install() {
        as_root apt-get install -y -q --no-install-recommends \
            -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${apt_pkgs[@]}" </dev/null
    }
    if ! apt_install >/tmp/install-tools-apt.log 2>&1; then
        log "apt-get install failed; running apt-get update and retrying"
        as_root apt-get update -q </dev/null >>/tmp/install-tools-apt.log 2>&1
        if ! apt_install >>/tmp/install-tools-apt.log 2>&1; then
            tail -n 30 /tmp/install-tools-apt.log >&2
            exit 1
        fi
    fi
    installed+=("${apt_pkgs[@]}")
    # The Debian package ships a systemd unit; on machines with an init system it may have started
    # a server on :9090. Tests start their own prometheus, so stop the packaged one if it runs.
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
        as_root systemctl disable --now prometheus >/dev/null 2>&1 || true
    fi
fi

# --- Python venv --------------------------------------------------------------------------------
PY="$VENV/bin/python"
venv_ok() {
    [ -x "$PY" ] && "$PY" - "$HELM_PYTHON_SDK_VERSION" "$KUBERNETES_VALIDATE_VERSION" <<'EOF' >/dev/null 2>&1
import sys
from importlib.metadata import version
assert version("helm-python-sdk") == sys.argv[1]
assert version("kubernetes-validate") == sys.argv[2]
import helm_python, kubernetes_validate  # noqa: F401
EOF
}

if ! venv_ok; then
    python_bin="${PYTHON:-}"
    if [ -z "$python_bin" ]; then
        for c in python3 python; do
            if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import venv, ensurepip' >/dev/null 2>&1; then
                python_bin="$c"; break
            fi
        done
    fi
    if [ -z "$python_bin" ]; then
        log "no python3 with venv/ensurepip; installing python3-venv"
        as_root apt-get install -y -q --no-install-recommends python3 python3-venv </dev/null >/dev/null 2>&1 || {
            as_root apt-get update -q </dev/null >/dev/null 2>&1
            as_root apt-get install -y -q --no-install-recommends python3 python3-venv </dev/null >/dev/null
        }
        python_bin=python3
    fi
    [ -x "$PY" ] || { log "creating venv $VENV"; "$python_bin" -m venv "$VENV"; }
    log "pip: installing helm-python-sdk==$HELM_PYTHON_SDK_VERSION kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
    "$PY" -m pip install -q --disable-pip-version-check --no-input \
        "helm-python-sdk==$HELM_PYTHON_SDK_VERSION" "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" pyyaml
    venv_ok || { log "venv check failed after install"; exit 1; }
    installed+=("helm-python-sdk==$HELM_PYTHON_SDK_VERSION" "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION")
fi

# --- cargo-deny ---------------------------------------------------------------------------------
# Compiled from crates.io (several minutes on 2 cores), so only when this version is missing.
if [ "$(cargo deny --version 2>/dev/null)" != "cargo-deny $CARGO_DENY_VERSION" ]; then
    log "cargo: installing cargo-deny $CARGO_DENY_VERSION (cargo install --locked)"
    cargo install --locked --quiet "cargo-deny@$CARGO_DENY_VERSION" </dev/null
    installed+=("cargo-deny@$CARGO_DENY_VERSION")
fi

# --- summary ------------------------------------------------------------------------------------
if [ "${#installed[@]}" -gt 0 ]; then log "installed: ${installed[*]}"; else log "everything already installed"; fi
log "promtool:   $(command -v promtool) ($(promtool --version 2>&1 | head -n1))"
log "prometheus: $(command -v prometheus)"
log "yamllint:   $(command -v yamllint) ($(yamllint --version 2>&1))"
log "jq:         $(command -v jq) ($(jq --version 2>&1))"
log "chromium:   $(command -v chromium) ($(chromium --version 2>/dev/null | head -n1))"
log "venv:       $VENV (helm-python-sdk $HELM_PYTHON_SDK_VERSION, kubernetes-validate $KUBERNETES_VALIDATE_VERSION)"
log "cargo-deny: $(command -v cargo-deny) ($(cargo deny --version 2>&1))"
