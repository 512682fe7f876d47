"""Support for .ci/runner_e2e.py: logging of figures, HTTP probes, the HTTPS git server, the
runner child process with its log, memory sampling of its process tree, and a GET poller.
Standard library only."""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
ENTRYPOINT = os.path.join(ROOT, "deploy", "runner", "entrypoint.mjs")
GIT = ["git", "-c", "user.name=runner-e2e", "-c", "user.email=runner-e2e@example.invalid",
       "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false"]
PREFIX = ["runner-e2e"]  # set by the driver


def log(msg):
    print(f"{PREFIX[0]}: {msg}", flush=True)


def figure(name, value):
    print(f"{PREFIX[0]}: {name}: {value}", flush=True)


class Failed(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failed(msg)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(argv, cwd=None, env=None, log_to=None, timeout=900):
    out = open(log_to, "ab") if log_to else subprocess.PIPE
    try:
        r = subprocess.run(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
    finally:
        if log_to:
            out.close()
    if r.returncode != 0:
        tail = open(log_to, errors="replace").read()[-3000:] if log_to else (r.stdout or b"").decode(errors="replace")
        raise Failed(f"{' '.join(argv[:4])} exited {r.returncode}:\n{tail}")
    return r


def get(port, path="/", timeout=2.0):
    """(status, body) of GET http://127.0.0.1:port/path with Host: localhost; (0, '') on error."""
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        c.request("GET", path, headers={"Host": "localhost", "Accept": "text/html,*/*"})
        r = c.getresponse()
        body = r.read().decode("utf-8", errors="replace")
        c.close()
        return r.status, body
    except (OSError, http.client.HTTPException):
        return 0, ""


# ---- git over HTTPS ------------------------------------------------------------------------

def git_server(work, procs, token_file=None):
    """Bare repo dir, git config file for the runner (insteadOf + CA), and the repo URL. With
    `token_file`, every request needs GIT_TOKEN's header for the token in that file."""
    tls = os.path.join(work, "tls")
    os.makedirs(tls)
    cmds = [
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=runner-e2e CA",
         "-keyout", f"{tls}/ca.key", "-out", f"{tls}/ca.pem",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        ["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
         "-keyout", f"{tls}/server.key", "-out", f"{tls}/server.csr"],
    ]
    for c in cmds:
        run(c, log_to=f"{tls}/openssl.log")
    with open(f"{tls}/ext.cnf", "w") as f:
        f.write("subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n")
    run(["openssl", "x509", "-req", "-in", f"{tls}/server.csr", "-CA", f"{tls}/ca.pem", "-CAkey", f"{tls}/ca.key",
         "-CAcreateserial", "-days", "2", "-extfile", f"{tls}/ext.cnf", "-out", f"{tls}/server.pem"],
        log_to=f"{tls}/openssl.log")
    port = free_port()
    root = os.path.join(work, "git")
    os.makedirs(os.path.join(root, "ci"))
    out = open(os.path.join(work, "git-https.out"), "w")
    err = open(os.path.join(work, "git-https.log"), "w")
    p = subprocess.Popen([sys.executable, os.path.join(HERE, "images", "git_https.py"), "--root", root,
                          "--cert", f"{tls}/server.pem", "--key", f"{tls}/server.key", "--port", str(port)]
                         + (["--token-file", token_file] if token_file else []),
                         stdout=out, stderr=err)
    procs.append(p)
    for _ in range(100):
        if "listening" in open(os.path.join(work, "git-https.out")).read():
            break
        time.sleep(0.1)
    gitconfig = os.path.join(work, "gitconfig")
    with open(gitconfig, "w") as f:
        f.write(f'[url "https://localhost:{port}/"]\n\tinsteadOf = https://git.test/\n'
                f"[http]\n\tsslCAInfo = {tls}/ca.pem\n"
                "[user]\n\tname = runner-e2e\n\temail = runner-e2e@example.invalid\n")
    return root, gitconfig


# ---- the runner ----------------------------------------------------------------------------

class Runner:
    def __init__(self, work, name, env):
        self.dir = os.path.join(work, name)
        os.makedirs(self.dir)
        self.env = dict(env, WORKDIR=os.path.join(self.dir, "w"))
        self.out_path = os.path.join(self.dir, "runner.log")
        self.lines = []  # (monotonic time, line)
        self.lock = threading.Lock()
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(["node", ENTRYPOINT], env=self.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        with open(self.out_path, "w") as f:
            for raw in self.proc.stdout:
                line = raw.decode("utf-8", errors="replace").rstrip("\n")
                with self.lock:
                    self.lines.append((time.monotonic(), line))
                f.write(line + "\n")
                f.flush()

    def when(self, pattern, after=0.0):
        """Time of the first log line after `after` matching the regex, or None."""
        with self.lock:
            for t, line in self.lines:
                if t >= after and re.search(pattern, line):
                    return t
        return None

    def count(self, pattern):
        with self.lock:
            return sum(1 for _, line in self.lines if re.search(pattern, line))

    def tail(self, n=40):
        with self.lock:
            return "\n".join(line for _, line in self.lines[-n:])

    def wait_log(self, pattern, timeout, after=0.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            t = self.when(pattern, after)
            if t is not None:
                return t
            if self.proc.poll() is not None:
                time.sleep(0.2)
                return self.when(pattern, after)
            time.sleep(0.1)
        return None

    def sync(self, timeout="60s"):
        r = subprocess.run(["node", ENTRYPOINT, "sync", "--timeout", timeout], env=self.env,
                           capture_output=True, text=True, timeout=120)
        try:
            return r.returncode, json.loads(r.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return r.returncode, {"raw": r.stdout + r.stderr}

    def stop(self, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode

    def tree_pids(self):
        children = {}
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(d))
        out, todo = [], [self.proc.pid]
        while todo:
            p = todo.pop()
            out.append(p)
            todo.extend(children.get(p, []))
        return out


class MemorySampler:
    """Peak PSS and RSS (sum over the runner's process tree), sampled every 250 ms, overall and
    per phase (`phase` names the current one)."""

    def __init__(self, runner):
        self.runner, self.peak_pss, self.peak_rss, self.stop_flag = runner, 0, 0, False
        self.phase, self.phases = "start", {}
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self):
        while not self.stop_flag and self.runner.proc.poll() is None:
            pss = rss = 0
            for pid in self.runner.tree_pids():
                try:
                    with open(f"/proc/{pid}/smaps_rollup") as f:
                        for line in f:
                            if line.startswith("Pss:"):
                                pss += int(line.split()[1])
                            elif line.startswith("Rss:"):
                                rss += int(line.split()[1])
                except (OSError, ValueError):
                    continue
            self.peak_pss, self.peak_rss = max(self.peak_pss, pss), max(self.peak_rss, rss)
            p = self.phases.setdefault(self.phase, [0, 0])
            p[0], p[1] = max(p[0], pss), max(p[1], rss)
            time.sleep(0.25)


class Poller:
    """GET / every 100 ms; records (time, status)."""

    def __init__(self, port):
        self.port, self.samples, self.stop_flag = port, [], False
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self):
        while not self.stop_flag:
            t = time.monotonic()
            status, _ = get(self.port, "/", timeout=1.0)
            self.samples.append((t, status))
            time.sleep(max(0.0, 0.1 - (time.monotonic() - t)))

    def max_gap(self):
        """Longest time between a 200 and the next 200, and how many polls were not 200."""
        oks = [t for t, s in self.samples if s == 200]
        gaps = [b - a for a, b in zip(oks, oks[1:])]
        return (max(gaps) if gaps else float("inf")), sum(1 for _, s in self.samples if s != 200)


def finish(procs, work):
    """Stops the servers a run started and removes its work directory (kept with KEEP_WORK=1)."""
    for p in procs:
        p.terminate()
        p.wait()
    if os.environ.get("KEEP_WORK") == "1":
        log(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


def until(fn, timeout, step=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(step)
    return None


# ---- the scenarios -------------------------------------------------------------------------

def push(work_clone, env, message, branch="main"):
    run(GIT + ["add", "-A"], cwd=work_clone, env=env)
    run(GIT + ["commit", "-q", "-m", message], cwd=work_clone, env=env)
    run(GIT + ["push", "-q", "origin", f"HEAD:refs/heads/{branch}"], cwd=work_clone, env=env)
    return run(GIT + ["rev-parse", "HEAD"], cwd=work_clone, env=env).stdout.decode().strip()


# ---- as Fly's proxy reaches the runner ------------------------------------------------------

def outside_address():
    """The machine's non-loopback IPv4 address (what Fly's proxy connects to), else 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: picks the outgoing interface
            addr = s.getsockname()[0]
        except OSError:
            addr = "127.0.0.1"
    return addr


def get_via(addr, port, path="/", host="roseram-5aacab32.fly.dev", timeout=5.0):
    """(status, body) of GET http://addr:port/path with a public Host header; (0, '') on error."""
    try:
        c = http.client.HTTPConnection(addr, port, timeout=timeout)
        c.request("GET", path, headers={"Host": host, "Accept": "text/html,*/*", "X-Forwarded-Proto": "https"})
        r = c.getresponse()
        body = r.read().decode("utf-8", errors="replace")
        c.close()
        return r.status, body
    except (OSError, http.client.HTTPException):
        return 0, ""


class TlsFront:
    """A stand-in for Fly's proxy: TLS on listen_addr:443, every connection piped as bytes to
    the runner at (target_addr, target_port) (set per run). Runs in a thread (asyncio)."""

    def __init__(self, cert, key, listen_addr="127.0.0.77", port=443):
        import asyncio
        import ssl
        self.target = None
        self.listen = (listen_addr, port)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.ctx.set_alpn_protocols(["http/1.1"])
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True).start()
        ready.wait(10)

    def _run(self, ready):
        import asyncio
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(
            asyncio.start_server(self._handle, self.listen[0], self.listen[1], ssl=self.ctx))
        self.server = server
        ready.set()
        self.loop.run_forever()

    async def _handle(self, reader, writer):
        import asyncio
        try:
            up_r, up_w = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return

        async def pipe(r, w):
            try:
                while True:
                    data = await r.read(65536)
                    if not data:
                        break
                    w.write(data)
                    await w.drain()
            except (OSError, ConnectionError):
                pass
            finally:
                try:
                    w.close()
                except (OSError, RuntimeError):
                    pass

        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))

    def stop(self):
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
