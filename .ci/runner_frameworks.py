#!/usr/bin/env python3
"""The preview runner on real scaffolded projects, reached as Fly's proxy reaches it; driven by
.ci/runner-frameworks.sh (in CI).

Projects (scaffolds cached as tarballs under --cache, npm's cache too, as in runner_e2e.py):
create-vite react-ts, create-next-app, `ng new --defaults`, `sv create` (SvelteKit), an
npm-workspaces monorepo with the Vite app in apps/web (run with ROOT_DIRECTORY=apps/web, and
from the root whose `dev` script is `npm run dev -w web`), and a plain node server that binds
`localhost` only. Each is pushed to a local HTTPS git server and run by the real runner; checked:

  first 200      GET / on the machine's NON-loopback address with `Host: roseram-….fly.dev`
  hot reload     (vite, next, angular) headless Chromium opens https://roseram-….fly.dev/ through
                 a TLS stand-in for Fly's proxy (TlsFront → the non-loopback address), a change
                 is pushed and synced (`entrypoint.mjs sync`), the open tab updates in place
                 (a mark on `window` survives): the time from push to updated tab
  supervision    (vite) the dev server SIGKILLed → serving again; SIGSTOPped → serving again
  crash loop     a server that dies 1.5 s after each start → exit 7 after FAILURE_LINGER
  install cause  a scoped dependency the registry does not have → exit 4 naming it and NPM_TOKEN

Figures print as `<prefix>: <name>: <value>`; any failed check exits 1. Standard library only
(the browser is driven by .ci/runner_browser.mjs on Node 22).
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from runner_e2e import scaffold  # noqa: E402
from runner_e2e_support import (  # noqa: E402
    ENTRYPOINT, GIT, HERE, PREFIX, Failed, Runner, finish, TlsFront, check, figure, free_port, get_via, git_server, log,
    outside_address, push, run, until,
)

APP = "roseram-5aacab32"
HOST = f"{APP}.fly.dev"

# name: (scaffold project, page probe, HMR edit (file, from, to with {m}), text shown after)
PROJECTS = {
    "vite": ("vite", 'id="root"', ("src/App.tsx", "<h1>Get started</h1>", "<h1>Get started {m}</h1>"), "Get started"),
    "next": ("next", "<html", ("app/page.tsx", "To get started, edit the", "{m}: edit the"), "To get started"),
    "angular": ("angular", "<app-root", ("src/app/app.html", "<h1>Hello, {{ title() }}</h1>",
                                          "<h1>Hello {m}, {{ title() }}</h1>"), "Hello, "),
    "sveltekit": ("sveltekit", "Welcome to SvelteKit", None, None),
}


def make_monorepo(work, vite_app):
    """npm workspaces: the Vite app in apps/web, a root whose dev script delegates to it."""
    root = os.path.join(work, "monorepo")
    os.makedirs(os.path.join(root, "apps"))
    shutil.copytree(vite_app, os.path.join(root, "apps", "web"), ignore=shutil.ignore_patterns(".git", "node_modules"))
    os.remove(os.path.join(root, "apps", "web", "package-lock.json"))
    pkg_path = os.path.join(root, "apps", "web", "package.json")
    pkg = json.load(open(pkg_path))
    pkg["name"] = "web"
    json.dump(pkg, open(pkg_path, "w"), indent=2)
    json.dump({"name": "mono", "private": True, "workspaces": ["apps/*"], "scripts": {"dev": "npm run dev -w web"}},
              open(os.path.join(root, "package.json"), "w"), indent=2)
    return root


def make_plain(work):
    """A node server that binds localhost only (HOST ignored), plus branches for failures."""
    root = os.path.join(work, "plain")
    os.makedirs(root)
    json.dump({"name": "plain", "version": "1.0.0", "private": True, "scripts": {"start": "node server.js"}},
              open(os.path.join(root, "package.json"), "w"), indent=2)
    with open(os.path.join(root, "server.js"), "w") as f:
        f.write("require('http').createServer((q, s) => s.end('<h1>plain node server</h1>'))"
                ".listen(Number(process.env.PORT), 'localhost');\n")
    return root


class Repos:
    """Projects committed to bare repos served at https://git.test/ci/<name> (git_https.py)."""

    def __init__(self, work, base_env, procs):
        self.work = work
        self.root, gitconfig = git_server(work, procs)
        cainfo = os.path.join(work, "tls", "ca.pem")
        self.git_env = dict(base_env, GIT_CONFIG_GLOBAL=gitconfig, GIT_SSL_CAINFO=cainfo, GIT_TERMINAL_PROMPT="0")
        self.runner_env = dict(base_env, GIT_CONFIG_GLOBAL=gitconfig, GIT_SSL_CAINFO=cainfo)

    def add(self, name, src):
        env = self.git_env
        run(GIT + ["init", "-q"], cwd=src, env=env)
        run(GIT + ["add", "-A"], cwd=src, env=env)
        run(GIT + ["commit", "-q", "-m", name], cwd=src, env=env)
        bare = os.path.join(self.root, "ci", f"{name}.git")
        run(GIT + ["clone", "-q", "--bare", src, bare], env=env)
        clone = os.path.join(self.work, f"clone-{name}")
        run(GIT + ["clone", "-q", f"https://git.test/ci/{name}", clone], env=env)
        run(GIT + ["remote", "set-url", "--push", "origin", bare], cwd=clone, env=env)
        return clone

    def runner(self, name, tag, **extra):
        port = free_port()
        env = dict(self.runner_env, REPO_URL=f"https://git.test/ci/{name}", REPO_BRANCH="main", ALLOWED_HOSTS="git.test",
                   PORT=str(port), SYNC_INTERVAL="60m", INSTALL_TIMEOUT="5m", FAILURE_LINGER="5s", FLY_APP_NAME=APP)
        env.update(extra)
        return Runner(self.work, "run-" + "".join(c if c.isalnum() else "-" for c in tag), env), port


def first_200(r, port, addr, probe, deadline):
    ok = until(lambda: (lambda s: s[0] == 200 and probe in s[1])(get_via(addr, port)) or r.proc.poll() is not None,
               deadline, 0.2)
    status, body = get_via(addr, port, timeout=30)
    check(ok and status == 200 and probe in body,
          f"no 200 with {probe!r} on http://{addr}:{port}/ (Host: {HOST}) within {deadline}s; last {status}\n{r.tail()}")
    return time.monotonic() - r.t0


def browser_hmr(args, repos, front, name, clone, r, port, addr, edit, expect):
    front.target = (addr, port)
    file, old, new = edit
    marker = f"HMR-{int(time.time())}"
    cfg = {
        "chromium": args.chromium, "url": f"https://{HOST}/", "resolverRules": f"MAP {HOST} {front.listen[0]}",
        "userDataDir": os.path.join(repos.work, f"chromium-{name}"), "expect": expect, "expectAfter": marker,
        "edit": {"file": os.path.join(clone, file), "from": old, "to": new.replace("{m}", marker)},
        "push": ["sh", "-c", f"cd {clone} && git add -A && git -c user.name=e2e -c user.email=e2e@example.invalid "
                 f"commit -q -m hmr && git push -q origin HEAD:refs/heads/main"],
        "sync": ["env", f"WORKDIR={r.env['WORKDIR']}", "node", ENTRYPOINT, "sync", "--timeout", "30s"],
        "timeoutMs": args.start_deadline * 1000, "updateTimeoutMs": 60_000,
    }
    env = dict(repos.git_env)
    p = subprocess.run(["node", os.path.join(HERE, "runner_browser.mjs"), json.dumps(cfg)], env=env,
                       capture_output=True, text=True, timeout=args.start_deadline + 120)
    try:
        out = json.loads(p.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise Failed(f"{name}: browser driver printed nothing useful: {p.stdout[-500:]} {p.stderr[-1500:]}")
    check(out.get("ok"), f"{name}: hot reload in Chromium failed: {out}\n{r.tail()}")
    figure(f"{name}: save -> open tab updated in place (Chromium via TLS front, push + sync)",
           f"{out['updateMs'] / 1000:.2f}s (sync answered in {out['syncMs'] / 1000:.2f}s; window mark kept; "
           f"first paint {out['firstPaintMs'] / 1000:.1f}s)")
    if out["updateMs"] > 2000:
        log(f"{name}: note: the tab updated after more than 2 s")
    return out


def dev_pid(r):
    """The dev server's main process: the deepest descendant of the runner listening... simply the
    child of the runner's dev process group that runs node with the most CPU time."""
    best, best_ticks = None, -1
    for pid in r.tree_pids()[1:]:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if not cmd or not os.path.basename(cmd[0]).startswith(b"node"):
            continue
        ticks = int(fields[11]) + int(fields[12])
        if ticks > best_ticks:
            best, best_ticks = pid, ticks
    return best


def supervise(r, port, addr):
    def status():
        s, body = get_via(addr, port, "/__preview/status")
        return json.loads(body) if s == 200 else {}

    for n, sig in ((1, signal.SIGKILL), (2, signal.SIGSTOP)):
        pid = dev_pid(r)
        check(pid is not None, f"no dev server process\n{r.tail()}")
        t = time.monotonic()
        os.kill(pid, sig)
        ok = until(lambda: status().get("restarts") == n and status().get("phase") == "serving"
                   and get_via(addr, port)[0] == 200, 120, 0.2)
        check(ok, f"dev server not serving again after {sig.name}\n{r.tail()}")
        figure(f"vite: dev server {sig.name} -> serving again (status restarts={n})", f"{time.monotonic() - t:.1f}s")


def crash_loop(repos, clone):
    with open(os.path.join(clone, "server.js"), "w") as f:
        f.write("require('http').createServer((q, s) => s.end('up')).listen(Number(process.env.PORT), process.env.HOST);\n"
                "setTimeout(() => { console.error('TypeError: boom'); process.exit(1); }, 1500);\n")
    run(GIT + ["checkout", "-q", "-b", "crash"], cwd=clone, env=repos.git_env)
    push(clone, repos.git_env, "crashes", branch="crash")
    r, port = repos.runner("plain", "crash", REPO_BRANCH="crash", FAILURE_LINGER="5s")
    try:
        r.proc.wait(240)
    except subprocess.TimeoutExpired:
        r.stop()
        raise Failed(f"crash loop: no exit within 240s\n{r.tail()}")
    served = r.when(r"\[runner\] dev server is serving")
    loop = r.when(r"crashloop: the status page stays up")
    last = r.tail(1)
    check(r.proc.returncode == 7, f"crash loop: exit {r.proc.returncode}, want 7\n{r.tail()}")
    check(last.startswith("runner: dev server failed 5 times within 2m"), f"crash loop: last line {last!r}")
    end = time.monotonic()
    figure("crash loop (dies 1.5 s after each start): first served -> crashloop -> exit 7 (FAILURE_LINGER=5s)",
           f"{loop - served:.1f}s -> {end - loop:.1f}s: {last}")


def install_cause(repos, clone, registry):
    pkg_path = os.path.join(clone, "package.json")
    run(GIT + ["checkout", "-q", "main"], cwd=clone, env=repos.git_env)
    pkg = json.load(open(pkg_path))
    pkg["dependencies"] = {"@acme-private/ui": "^1.0.0"}
    json.dump(pkg, open(pkg_path, "w"), indent=2)
    run(GIT + ["checkout", "-q", "-b", "private"], cwd=clone, env=repos.git_env)
    push(clone, repos.git_env, "private dependency", branch="private")
    r, port = repos.runner("plain", "private", REPO_BRANCH="private", npm_config_registry=registry,
                           NPM_TOKEN="npm_e2eSecretValue0123456789abcdefghij")
    addr = outside_address()
    ok = until(lambda: get_via(addr, port, "/__preview/ready")[1].startswith("install_failed:"), 120, 0.2)
    body = get_via(addr, port, "/__preview/ready")[1]
    check(ok, f"install cause: no install_failed status\n{r.tail()}")
    page = get_via(addr, port, "/")
    check(page[0] == 503 and "@acme-private/ui" in page[1], f"install cause: status page {page[0]}")
    r.proc.wait(60)
    last = r.tail(1)
    check(r.proc.returncode == 4, f"install cause: exit {r.proc.returncode}\n{r.tail()}")
    check("@acme-private/ui" in last and "NPM_TOKEN" in last, f"install cause: last line {last!r}")
    check("npm_e2eSecretValue" not in open(r.out_path).read(), "NPM_TOKEN leaked into the log")
    figure("install failure (private scoped package, registry 404): exit 4", last)
    log(f"ready body: {body.splitlines()[0]}")


def registry_404():
    """An npm registry that has nothing (404 for every package), on loopback."""
    import http.server
    import threading

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = b'{"error":"Not found"}'
            self.send_response(404)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{srv.server_address[1]}/"


def serve_project(args, repos, front, addr, name, clone, probe, edit=None, expect=None, label=None, **extra):
    label = label or name
    r, port = repos.runner(name, label, **extra)
    try:
        took = first_200(r, port, addr, probe, args.start_deadline)
        t_inst = r.when(r"\[runner\] installing dependencies")
        t_dev = r.when(r"\[runner\] starting dev server")
        split = f" (install {t_dev - t_inst:.1f}s, dev server start to first 200 {r.t0 + took - t_dev:.1f}s)" \
            if t_inst and t_dev else ""
        figure(f"{label}: first 200 on {addr} (non-loopback), Host {HOST}", f"{took:.1f}s{split}")
        if edit:
            browser_hmr(args, repos, front, label, clone, r, port, addr, edit, expect)
        if name == "vite":
            supervise(r, port, addr)
        if name == "plain":
            check(r.when(r"only \(loopback\).*listen on 0\.0\.0\.0") is not None, f"no loopback-only line\n{r.tail()}")
            log("plain: the localhost-only server is served, with the one line naming the port and the fix")
        code = r.stop()
        check(code == 0, f"{label}: runner exit {code} after SIGTERM\n{r.tail()}")
    finally:
        r.stop()
        if os.environ.get("KEEP_WORK") == "1":
            log(f"{label}: log {r.out_path}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", required=True)
    ap.add_argument("--prefix", default="runner-frameworks")
    ap.add_argument("--only", default="vite,next,angular,sveltekit,monorepo,plain,crashloop,install")
    ap.add_argument("--start-deadline", type=int, default=300)
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = ap.parse_args()
    PREFIX[0] = args.prefix
    # SIGTERM (a CI timeout) unwinds through the finally blocks, which stop every runner.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    only = set(args.only.split(","))
    t_all = time.time()
    work = tempfile.mkdtemp(prefix="runner-frameworks.")
    procs, front = [], None
    try:
        npm_cache = os.path.join(args.cache, "npm-cache-e2e")
        base_env = dict(os.environ, npm_config_cache=npm_cache, npm_config_update_notifier="false",
                        npm_config_fund="false", npm_config_audit="false", npm_config_prefer_offline="true",
                        NG_CLI_ANALYTICS="false")
        base_env.setdefault("NODE_EXTRA_CA_CERTS", "/etc/ssl/certs/ca-certificates.crt")
        repos = Repos(work, base_env, procs)
        addr = outside_address()
        check(addr != "127.0.0.1", "this machine has no non-loopback address")
        front = TlsFront(os.path.join(work, "tls", "server.pem"), os.path.join(work, "tls", "server.key"))
        figure("host", f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; non-loopback address {addr}; "
               f"node {subprocess.run(['node', '--version'], capture_output=True, text=True).stdout.strip()}")
        apps = {}
        for name, (project, probe, edit, expect) in PROJECTS.items():
            if name in only or (name == "vite" and "monorepo" in only):
                os.makedirs(os.path.join(work, name))
                apps[name] = scaffold(project, args.cache, os.path.join(work, name), base_env)
        for name, (project, probe, edit, expect) in PROJECTS.items():
            if name in only:
                clone = repos.add(name, apps[name])
                serve_project(args, repos, front, addr, name, clone, probe, edit, expect)
        if "monorepo" in only:
            mono = make_monorepo(work, apps["vite"])
            run(["npm", "install", "--package-lock-only", "--no-audit", "--no-fund"], cwd=mono, env=base_env,
                log_to=os.path.join(work, "monorepo.log"))
            repos.add("monorepo", mono)
            serve_project(args, repos, front, addr, "monorepo", None, 'id="root"', label="monorepo ROOT_DIRECTORY=apps/web",
                          ROOT_DIRECTORY="apps/web")
            serve_project(args, repos, front, addr, "monorepo", None, 'id="root"',
                          label="monorepo root dev = npm run dev -w web")
        plain_clone = repos.add("plain", make_plain(work)) if only & {"plain", "crashloop", "install"} else None
        if "plain" in only:
            serve_project(args, repos, front, addr, "plain", plain_clone, "plain node server")
        if "crashloop" in only:
            crash_loop(repos, plain_clone)
        if "install" in only:
            install_cause(repos, plain_clone, registry_404())
        figure("total", f"{time.time() - t_all:.0f}s")
        log("all green")
        return 0
    except Failed as e:
        print(f"{PREFIX[0]}: FAILED: {e}", file=sys.stderr, flush=True)
        return 1
    finally:
        if front:
            front.stop()
        finish(procs, work)


if __name__ == "__main__":
    sys.exit(main())
