#!/usr/bin/env python3
"""The runner image on the CPU a Fly machine gets; driven by .ci/runner-cpu-bench.sh (a bench for
BENCHMARKS.md "Runner on Fly's CPU", not a CI test).

Each case starts the runner image with podman (runc, host network, 2 GB memory) on a scaffolded
project served at https://git.test/ci/<project> (git_https.py, TLS from a CA made per run) under
one CPU limit of its container's cgroup (v2):

  shared    Fly's shared vCPU: every 80 ms a controller rewrites the CFS quota (`cpu.max` on
            cgroup v2, `cpu.cfs_quota_us` on a v1 cpu controller) from a burst balance. Baseline
            5 ms per 80 ms per vCPU (6.25 % of a core); unused baseline accrues, up to 500 s; the
            next period may use its baseline plus the balance, at most all its vCPUs; spending is
            what usage_usec grew by. --burst is the balance at start (0 = cold, a new machine).
  1, 2      dedicated cores: `--cpus 1` / `--cpus 2` (the host's cores are shared with whatever
            else runs; the quota is a ceiling, not a reservation).

Per case: clone / install / dev-ready (the runner's log lines), first 200 (GET / with
Host: localhost, the page's marker), assets loaded (the HTML plus every same-origin script,
stylesheet and module it references, followed through JS imports: what a browser fetches to show
the page), each from `podman run`; and the CPU-seconds (usage_usec) used in each phase.
Prints `runner-cpu-bench: <case>: ...` lines and writes the rows as JSON (--out).
"""
import argparse
import concurrent.futures
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from runner_e2e import PROJECTS  # noqa: E402
from runner_e2e_support import free_port, get, run  # noqa: E402

PERIOD_US = 80_000
BASELINE_US = 5_000  # per vCPU per period
MAX_BALANCE_US = 500_000_000
PHASES = [  # (name, runner log line that ends it)
    ("start", r"^\[runner\] cloning "),
    ("clone", r"^\[runner\] cloned "),
    ("install", r"^\[runner\] starting dev server "),
    ("dev_ready", r"^\[runner\] dev server is serving"),
]


def log(msg):
    print(f"runner-cpu-bench: {msg}", flush=True)


class Cgroup:
    """The container's cgroup: CPU used (cgroup v2 `cpu.stat` usage_usec, the unified hierarchy on a
    hybrid host) and its quota (`cpu.max` on v2, `cpu.cfs_quota_us` of the v1 cpu controller)."""

    def __init__(self, pid):
        rel = {}
        with open(f"/proc/{pid}/cgroup") as f:
            for line in f:
                _, ctrls, p = line.rstrip("\n").split(":", 2)
                rel[ctrls] = p.lstrip("/")
        unified = "/sys/fs/cgroup/unified" if os.path.isdir("/sys/fs/cgroup/unified") else "/sys/fs/cgroup"
        self.stat = os.path.join(unified, rel[""], "cpu.stat")
        v1 = next((p for c, p in rel.items() if "cpu" in c.split(",")), None)
        if v1 is not None:
            self.quota_file, self.v1 = os.path.join("/sys/fs/cgroup/cpu", v1, "cpu.cfs_quota_us"), True
            self.weight_file, self.top_weight = os.path.join("/sys/fs/cgroup/cpu", os.path.dirname(v1), "cpu.shares"), "262144"
        else:
            self.quota_file, self.v1 = os.path.join(unified, rel[""], "cpu.max"), False
            self.weight_file, self.top_weight = os.path.join(unified, os.path.dirname(rel[""]), "cpu.weight"), "10000"
        self.saved_weight = None

    def prioritize(self):
        """The highest weight for the parent of the container's cgroup too (the container's own
        weight only counts among its siblings); restore() puts the old one back."""
        try:
            with open(self.weight_file) as f:
                self.saved_weight = f.read().strip()
            with open(self.weight_file, "w") as f:
                f.write(self.top_weight)
        except OSError as e:
            log(f"warning: cannot raise the CPU weight of {self.weight_file}: {e}")

    def restore(self):
        if self.saved_weight is not None:
            with open(self.weight_file, "w") as f:
                f.write(self.saved_weight)

    def usage(self):
        try:
            with open(self.stat) as f:
                for line in f:
                    if line.startswith("usage_usec "):
                        return int(line.split()[1])
        except OSError:
            return None
        return None

    def set_quota(self, quota_us):
        with open(self.quota_file, "w") as f:
            f.write(str(quota_us) if self.v1 else f"{quota_us} {PERIOD_US}")


class SharedCpu:
    """Fly's shared-vCPU scheme on one cgroup: quota rewritten every 80 ms from a balance."""

    def __init__(self, cgroup, cpus, burst_s):
        self.cgroup, self.cpus, self.balance = cgroup, cpus, burst_s * 1_000_000
        self.stop_flag, self.throttled_periods, self.error = False, 0, None
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self):
        last = self.cgroup.usage()
        next_t = time.monotonic()
        while not self.stop_flag:
            next_t += PERIOD_US / 1e6
            time.sleep(max(0.0, next_t - time.monotonic()))
            now = self.cgroup.usage()
            if now is None or last is None:
                self.error = "no cpu.stat"
                return
            used, last = now - last, now
            baseline = BASELINE_US * self.cpus
            self.balance = min(MAX_BALANCE_US, max(0, self.balance + baseline - used))
            # The next period may spend its baseline plus the balance, up to all its vCPUs.
            quota = min(PERIOD_US * self.cpus, self.balance + baseline)
            self.throttled_periods += quota < PERIOD_US * self.cpus
            try:
                self.cgroup.set_quota(quota)
            except OSError as e:
                self.error = f"cannot set the quota: {e}"
                return


def container_cgroup(name, deadline=30):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        r = subprocess.run(["podman", "inspect", "-f", "{{.State.Pid}}", name], capture_output=True, text=True)
        pid = r.stdout.strip()
        if r.returncode == 0 and pid not in ("", "0"):
            return Cgroup(pid)
        time.sleep(0.02)
    raise RuntimeError(f"container {name} has no pid after {deadline}s")


def port_free(port):
    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", port))
            return True
        except OSError:
            return False


ASSET_RE = re.compile(r'''(?:src|href)=["'](/[^"'#]*)["']''')
IMPORT_RE = re.compile(r'''(?:\bfrom\s*|\bimport\s*\(?\s*)["'](/[^"'#]+)["']''')


def fetch(port, path, timeout=120):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        c.request("GET", path, headers={"Host": "localhost", "Accept": "*/*"})
        r = c.getresponse()
        body = r.read().decode("utf-8", errors="replace")
        c.close()
        return r.status, r.getheader("content-type") or "", body
    except (OSError, http.client.HTTPException):
        return 0, "", ""


def load_assets(port, html, cap=600):
    """Fetch everything the page references (same origin), following JS imports; (count, failed)."""
    seen, failed = set(), 0
    # Tags with src/href, and modules an inline <script type="module"> imports (SvelteKit's entry).
    todo = [p for p in ASSET_RE.findall(html) + IMPORT_RE.findall(html) if not p.startswith("//")]
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        while todo and len(seen) < cap:
            batch = [p for p in dict.fromkeys(todo) if p not in seen][: cap - len(seen)]
            seen.update(batch)
            todo = []
            for path, (status, ctype, body) in zip(batch, pool.map(lambda p: fetch(port, p), batch)):
                if status != 200:
                    failed += 1
                    continue
                if "javascript" in ctype or "css" in ctype:
                    todo.extend(p for p in IMPORT_RE.findall(body) if not p.startswith("//"))
    return len(seen), failed


class Case:
    def __init__(self, args, env, image, project, cpu):
        self.args, self.env, self.image, self.project, self.cpu = args, env, image, project, cpu
        self.name = f"cpu-bench-{os.getpid()}-{project}-{cpu}"
        self.lines, self.edges, self.lock = [], {}, threading.Lock()

    def limits(self):
        # The quota is what the machine may use; the highest CPU weight (here and on the parent
        # cgroup, Cgroup.prioritize) makes it get that much on a host where other work runs
        # (else a loaded host starves it below its quota: the figures would measure the host).
        weight = ["--cpu-shares", "262144"]
        if self.cpu == "shared":
            start = PERIOD_US if self.args.burst > 0 else BASELINE_US
            return weight + ["--cpu-period", str(PERIOD_US), "--cpu-quota", str(start * self.args.shared_cpus)]
        return weight + ["--cpus", self.cpu]

    def _read(self, proc):
        for raw in proc.stdout:
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            t = time.monotonic()
            with self.lock:
                self.lines.append(line)
                for name, pat in PHASES:
                    if name not in self.edges and re.search(pat, line):
                        self.edges[name] = (t, self.cgroup.usage() if self.cgroup else None)

    def run(self):
        port = free_port()
        while not port_free(port + 1):  # the runner's dev server takes PORT + 1 (host network)
            port = free_port()
        cmd = self.env["podman_run"] + ["--name", self.name, "--memory", "2g", *self.limits(),
                                        *self.env["mounts"], "-e", f"REPO_URL=https://git.test/ci/{self.project}",
                                        "-e", f"PORT={port}", self.image]
        self.cgroup = None
        self.t0 = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            self.cgroup = container_cgroup(self.name)
            self.cgroup.prioritize()
            u0 = 0
            shared = SharedCpu(self.cgroup, self.args.shared_cpus, self.args.burst) if self.cpu == "shared" else None
            threading.Thread(target=self._read, args=(proc,), daemon=True).start()
            row = self.measure(proc, port, u0)
            if shared:
                shared.stop_flag = True
                row["throttled_s"] = round(shared.throttled_periods * PERIOD_US / 1e6, 1)
                if shared.error:
                    row["emulation_error"] = shared.error
            return row
        finally:
            if self.cgroup is not None:
                self.cgroup.restore()
            subprocess.run(["podman", "rm", "-f", "-t", "3", self.name], capture_output=True)
            proc.wait()

    def measure(self, proc, port, u0):
        probe = PROJECTS[self.project]["page_probe"]
        first = None
        while time.monotonic() - self.t0 < self.args.deadline and proc.poll() is None:
            status, body = get(port, "/", timeout=60)
            if status == 200 and probe in body:
                first = (time.monotonic(), self.cgroup.usage())
                break
            time.sleep(0.2)
        row = {"project": self.project, "cpu": self.cpu, "image": self.image, "load": round(os.getloadavg()[0], 1)}
        if first is None:
            time.sleep(1)
            row["failed"] = f"no 200 within {self.args.deadline}s" if proc.poll() is None else f"exit {proc.returncode}"
            row["tail"] = self.lines[-6:]
        else:
            status, _, html = fetch(port, "/")
            n, failed = load_assets(port, html)
            loaded = (time.monotonic(), self.cgroup.usage())
            row.update(assets=n, assets_failed=failed)
        with self.lock:
            edges = dict(self.edges)
        points = [("t0", (self.t0, u0))] + [(n, edges.get(n)) for n, _ in PHASES]
        if first is not None:
            points += [("first_200", first), ("loaded", loaded)]
        for name, pt in points[1:]:
            if pt is not None:
                row[name] = round(pt[0] - self.t0, 1)
        prev = points[0][1]
        for name, pt in points[1:]:
            if pt is None or pt[1] is None or prev[1] is None:
                continue
            row[f"cpu_{name}"] = round((pt[1] - prev[1]) / 1e6, 2)
            prev = pt
        row["install_line"] = next((ln for ln in self.lines if re.match(r"^\[install\] (added|up to date)|^\[runner\] .*prebuilt", ln)), None)
        return row


def serve(work, projects, cache):
    """Bare repos of the cached scaffolds, served over HTTPS: (port, ca path, server process)."""
    g = ["git", "-c", "user.name=cpu-bench", "-c", "user.email=cpu-bench@example.invalid", "-c", "init.defaultBranch=main",
         "-c", "commit.gpgsign=false"]
    os.makedirs(os.path.join(work, "git", "ci"))
    for p in projects:
        src = os.path.join(work, "src", p)
        os.makedirs(src)
        with tarfile.open(os.path.join(cache, f"{p}-app.tar.gz")) as tf:
            tf.extractall(src)
        app = os.path.join(src, "app")
        for c in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", p]):
            run(g + ["-C", app] + c)
        run(g + ["clone", "-q", "--bare", app, os.path.join(work, "git", "ci", f"{p}.git")])
    tls = os.path.join(work, "tls")
    os.makedirs(tls)
    for c in (
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=cpu-bench CA", "-keyout",
         f"{tls}/ca.key", "-out", f"{tls}/ca.pem", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        ["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=git.test", "-keyout", f"{tls}/server.key",
         "-out", f"{tls}/server.csr"],
    ):
        run(c, log_to=f"{tls}/openssl.log")
    with open(f"{tls}/ext.cnf", "w") as f:
        f.write("subjectAltName=DNS:git.test\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n")
    run(["openssl", "x509", "-req", "-in", f"{tls}/server.csr", "-CA", f"{tls}/ca.pem", "-CAkey", f"{tls}/ca.key",
         "-CAcreateserial", "-days", "2", "-extfile", f"{tls}/ext.cnf", "-out", f"{tls}/server.pem"], log_to=f"{tls}/openssl.log")
    os.chmod(f"{tls}/ca.pem", 0o644)
    port = free_port()
    out = open(os.path.join(work, "git-https.out"), "w")
    srv = subprocess.Popen([sys.executable, os.path.join(HERE, "images", "git_https.py"), "--root", os.path.join(work, "git"),
                            "--cert", f"{tls}/server.pem", "--key", f"{tls}/server.key", "--port", str(port)],
                           stdout=out, stderr=open(os.path.join(work, "git-https.log"), "w"))
    for _ in range(100):
        if "listening" in open(os.path.join(work, "git-https.out")).read():
            break
        time.sleep(0.1)
    return port, f"{tls}/ca.pem", srv


def container_env(args, git_port, ca):
    """The podman run prefix and the mounts / environment every case shares."""
    return {
        "podman_run": args.podman_run.split(),
        "mounts": ["--add-host", "git.test:127.0.0.1", "-v", f"{ca}:/ci/ca.pem:ro", "-v", f"{args.npm_cache}:/ci/npm-cache",
                   "-e", "npm_config_cache=/ci/npm-cache", "-e", "GIT_SSL_CAINFO=/ci/ca.pem", "-e", "REPO_BRANCH=main",
                   "-e", "ALLOWED_HOSTS=git.test", "-e", "GIT_CONFIG_COUNT=1",
                   # npm trusts what the host trusts (a network that intercepts TLS), as in .ci/images/run.sh.
                   "-v", f"{os.path.realpath(args.host_ca)}:/ci/host-ca.pem:ro", "-e", "NODE_EXTRA_CA_CERTS=/ci/host-ca.pem",
                   "-e", f"GIT_CONFIG_KEY_0=url.https://git.test:{git_port}/.insteadOf", "-e", "GIT_CONFIG_VALUE_0=https://git.test/"],
    }


def main():
    if sys.argv[1:2] == ["--table"]:
        from runner_cpu_table import table
        table(sys.argv[2:])
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--image", action="append", required=True, help="label=tag, repeatable")
    ap.add_argument("--projects", default="vite,next,sveltekit")
    ap.add_argument("--cpus", default="shared,1,2")
    ap.add_argument("--shared-cpus", type=int, default=1)
    ap.add_argument("--burst", type=float, default=0.0, help="burst balance at start, seconds (0 = cold)")
    ap.add_argument("--deadline", type=float, default=420)
    ap.add_argument("--cache", required=True)
    ap.add_argument("--npm-cache", required=True)
    ap.add_argument("--podman-run", required=True, help="the podman run prefix, as one string")
    ap.add_argument("--out", required=True)
    ap.add_argument("--host-ca", default=os.environ.get("NODE_EXTRA_CA_CERTS", "/etc/ssl/certs/ca-certificates.crt"))
    args = ap.parse_args()
    projects = args.projects.split(",")
    work = tempfile.mkdtemp(prefix="cpu-bench.")
    git_port, ca, srv = serve(work, projects, args.cache)
    env = container_env(args, git_port, ca)
    rows = []
    try:
        for spec in args.image:
            label, image = spec.split("=", 1)
            for project in projects:
                for cpu in args.cpus.split(","):
                    row = Case(args, env, image, project, cpu).run()
                    row["label"] = label
                    rows.append(row)
                    log(json.dumps(row))
                    with open(args.out, "w") as f:
                        json.dump(rows, f, indent=1)
    finally:
        srv.terminate()
        srv.wait()
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
