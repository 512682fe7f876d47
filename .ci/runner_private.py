#!/usr/bin/env python3
"""The preview runner with a private repository and a private package, end to end (CI):

  git     the repository is served by git_https.py (TLS) and every request must carry GIT_TOKEN's
          header: no token -> exit 3 "needs access: add GIT_TOKEN"; a wrong token -> exit 3
          "refused GIT_TOKEN: renew"; the right one -> served; the token rotated on the server ->
          the running runner's sync fails naming GIT_TOKEN, and a runner given the new token (what
          the controller does: the machine boots again with the new app secret) serves
  npm     @acme/private-lib is published to a local Verdaccio (the npm registry server) that lets
          only signed-in users read @acme/*: without NPM_TOKEN -> exit 4 naming the package and
          NPM_TOKEN; with it -> installed and served
  canary  neither token in the runner's log, its status page, .git/config, the working tree, any
          process's argv, the dev server's environment, or a leftover npm config file

Prints `runner-private: <name>: <value>`; any failed check exits 1. Standard library only; Verdaccio
is installed from the npm registry into --cache once.
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from runner_e2e_support import (  # noqa: E402
    GIT, PREFIX, Failed, Runner, finish, check, figure, free_port, get, git_server, log, push, run, until,
)

GIT_TOKEN = "ghp_GITCANARY0123456789abcdefghij"
GIT_TOKEN_2 = "ghp_GITCANARYrotated9876543210zyx"
NPM_PASSWORD = "pw-NPMCANARY-31f"
LIB_TEXT = "private-lib says hello"


def verdaccio(cache, work, procs):
    """Starts Verdaccio on a free port; returns (registry URL, a read/publish token)."""
    prefix = os.path.join(cache, "verdaccio")
    binary = os.path.join(prefix, "node_modules", ".bin", "verdaccio")
    if not os.path.exists(binary):
        run(["npm", "install", "--prefix", prefix, "--no-audit", "--no-fund", "verdaccio@6"], timeout=600)
    port, home = free_port(), os.path.join(work, "verdaccio")
    os.makedirs(home)
    with open(os.path.join(home, "config.yaml"), "w") as f:
        f.write(f"storage: {home}/storage\nauth:\n  htpasswd:\n    file: {home}/htpasswd\n    max_users: 10\n"
                "uplinks: {}\npackages:\n  '@acme/*':\n    access: $authenticated\n    publish: $authenticated\n"
                "  '**':\n    access: $all\n    publish: $authenticated\n"
                f"listen: 127.0.0.1:{port}\nlog: {{type: stdout, format: pretty, level: warn}}\n")
    out = open(os.path.join(home, "verdaccio.log"), "w")
    procs.append(subprocess.Popen([binary, "--config", os.path.join(home, "config.yaml")], stdout=out, stderr=out))
    url = f"http://127.0.0.1:{port}/"
    check(until(lambda: get(port, "/-/ping")[0] == 200, 60), "Verdaccio did not start")
    body = json.dumps({"name": "ci", "password": NPM_PASSWORD, "type": "user", "roles": []}).encode()
    req = urllib.request.Request(f"{url}-/user/org.couchdb.user:ci", data=body, method="PUT",
                                 headers={"content-type": "application/json"})
    token = json.load(urllib.request.urlopen(req, timeout=10))["token"]
    return url, token


def publish_private_lib(work, registry, token, env):
    lib = os.path.join(work, "private-lib")
    os.makedirs(lib)
    with open(os.path.join(lib, "package.json"), "w") as f:
        json.dump({"name": "@acme/private-lib", "version": "1.0.0", "main": "index.js"}, f)
    with open(os.path.join(lib, "index.js"), "w") as f:
        f.write(f"module.exports = {json.dumps(LIB_TEXT)};\n")
    rc = os.path.join(work, "publish.npmrc")
    with open(rc, "w") as f:
        f.write(f"//{registry.split('://', 1)[1]}:_authToken={token}\n")
    run(["npm", "publish", "--registry", registry], cwd=lib, env=dict(env, npm_config_userconfig=rc))


def private_repo(work, procs, env):
    """The app in a repository only GIT_TOKEN's header opens; returns (token file, git env, clone)."""
    token_file = os.path.join(work, "git-token")
    with open(token_file, "w") as f:
        f.write(GIT_TOKEN)
    root, gitconfig = git_server(work, procs, token_file=token_file)
    cainfo = os.path.join(work, "tls", "ca.pem")
    git_env = dict(env, GIT_CONFIG_GLOBAL=gitconfig, GIT_SSL_CAINFO=cainfo, GIT_TERMINAL_PROMPT="0")
    app = os.path.join(work, "app")
    os.makedirs(app)
    with open(os.path.join(app, "package.json"), "w") as f:
        json.dump({"name": "priv-app", "private": True, "scripts": {"dev": "node server.js"},
                   "dependencies": {"@acme/private-lib": "1.0.0"}}, f)
    with open(os.path.join(app, "server.js"), "w") as f:
        f.write("const msg = require('@acme/private-lib');\n"
                "require('http').createServer((q, s) => s.end('<p>' + msg + '</p>'))"
                ".listen(Number(process.env.PORT), process.env.HOST);\n")
    for argv in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "private app"]):
        run(GIT + argv, cwd=app, env=git_env)
    run(GIT + ["clone", "-q", "--bare", app, os.path.join(root, "ci", "private.git")], env=git_env)
    run(GIT + ["remote", "add", "origin", os.path.join(root, "ci", "private.git")], cwd=app, env=git_env)
    return token_file, dict(env, GIT_CONFIG_GLOBAL=gitconfig, GIT_SSL_CAINFO=cainfo), app


def last_line(r):
    lines = [line for line in r.tail(200).splitlines() if line.startswith("runner: ")]
    return lines[-1] if lines else r.tail(5)


def refused(work, name, env, exit_code, pattern):
    r = Runner(work, name, env)
    try:
        check(until(lambda: r.proc.poll() is not None, 120), f"{name}: runner still running:\n{r.tail()}")
        line = last_line(r)
        check(r.proc.returncode == exit_code, f"{name}: exit {r.proc.returncode}, want {exit_code}:\n{r.tail()}")
        check(pattern in line, f"{name}: {line!r} does not say {pattern!r}")
        figure(name, f"exit {exit_code}: {line}")
        return r
    finally:
        r.stop()


def no_canary(what, text, canaries):
    for c in canaries:
        check(c not in text, f"{what} holds a secret ({c[:8]}…)")


def canary_sweep(r, canaries):
    """Every place a token must never be, for a serving runner."""
    no_canary("the runner's log", r.tail(100000), canaries)
    no_canary("/__preview/status", get(int(r.env["PORT"]), "/__preview/status")[1], canaries)
    repo = os.path.join(r.env["WORKDIR"], "repo")
    with open(os.path.join(repo, ".git", "config")) as f:
        no_canary(".git/config", f.read(), canaries)
    grep = subprocess.run(["grep", "-rlF", "-e", canaries[0], "-e", canaries[1], repo + "/"], capture_output=True)
    check(grep.stdout == b"", f"the working tree holds a token: {grep.stdout[:200]!r}")
    for pid in r.tree_pids():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                no_canary(f"argv of {pid}", f.read().decode(errors="replace"), canaries)
            if pid != r.proc.pid:  # the runner's own start environment is Fly's; children get neither
                with open(f"/proc/{pid}/environ", "rb") as f:
                    no_canary(f"environment of {pid}", f.read().decode(errors="replace"), canaries)
        except OSError:
            pass
    left = [p for p in glob.glob(os.path.join(tempfile.gettempdir(), "runner-npm-*"))
            if os.path.getmtime(p) >= r.t0_wall]
    check(not left, f"npm config files left behind: {left}")


def scenarios(work, procs, cache, base_env):
    registry, npm_token = verdaccio(cache, work, procs)
    publish_private_lib(work, registry, npm_token, base_env)
    log(f"Verdaccio at {registry} serves @acme/private-lib to signed-in users only")
    token_file, runner_base, app = private_repo(work, procs, base_env)
    env = dict(runner_base, REPO_URL="https://git.test/ci/private", REPO_BRANCH="main", ALLOWED_HOSTS="git.test",
               FAILURE_LINGER="1s", npm_config_registry=registry,
               npm_config_cache=os.path.join(work, "npm-cache"))
    fresh = lambda **kw: dict(env, PORT=str(free_port()), **kw)  # noqa: E731
    refused(work, "no GIT_TOKEN", fresh(), 3, "needs access: add GIT_TOKEN")
    refused(work, "wrong GIT_TOKEN", fresh(GIT_TOKEN="ghp_wrongwrongwrongwrong00000"), 3, "refused GIT_TOKEN: renew")
    refused(work, "no NPM_TOKEN", fresh(GIT_TOKEN=GIT_TOKEN), 4, "(@acme/private-lib in package.json) needs NPM_TOKEN")
    r = Runner(work, "both tokens", fresh(GIT_TOKEN=GIT_TOKEN, NPM_TOKEN=npm_token))
    r.t0_wall = time.time() - 1
    try:
        port = int(r.env["PORT"])
        ok = until(lambda: LIB_TEXT in get(port, "/")[1], 180)
        check(ok, f"the private app was not served:\n{r.tail()}")
        figure("private repo + private package", f"served after {time.monotonic() - r.t0:.1f}s")
        canary_sweep(r, [GIT_TOKEN, npm_token])
        figure("canary", "no token in the log, status page, .git/config, working tree, argv, child environments or temp files")
        with open(token_file, "w") as f:
            f.write(GIT_TOKEN_2)
        with open(os.path.join(app, "server.js"), "a") as f:
            f.write("// rotated\n")
        push(app, runner_base, "after rotation")
        code, reply = r.sync()
        check(code == 1 and "GIT_TOKEN" in json.dumps(reply), f"sync with the old token: {code} {reply}")
        figure("rotated token, old runner", f"sync exit {code}: {reply.get('message', reply)}")
    finally:
        r.stop()
    r2 = Runner(work, "rotated token", fresh(GIT_TOKEN=GIT_TOKEN_2, NPM_TOKEN=npm_token))
    try:
        check(until(lambda: LIB_TEXT in get(int(r2.env["PORT"]), "/")[1], 180), f"rotated: not served:\n{r2.tail()}")
        figure("rotated token, new machine", f"served after {time.monotonic() - r2.t0:.1f}s")
    finally:
        r2.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", required=True)
    args = ap.parse_args()
    PREFIX[0] = "runner-private"
    work = tempfile.mkdtemp(prefix="runner-private.")
    procs = []
    t0 = time.time()
    try:
        base_env = dict(os.environ, npm_config_update_notifier="false", npm_config_fund="false",
                        npm_config_audit="false")
        scenarios(work, procs, args.cache, base_env)
        figure("total", f"{time.time() - t0:.0f}s")
        log("all green")
        return 0
    except Failed as e:
        print(f"runner-private: FAILED: {e}", file=sys.stderr, flush=True)
        return 1
    finally:
        finish(procs, work)


if __name__ == "__main__":
    sys.exit(main())
