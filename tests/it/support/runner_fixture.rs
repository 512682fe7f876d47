//! A git fixture (bare repo reachable as `https://github.com/o/r`) and a guard around the
//! runner child process, shared by the `runner*` test modules. See `tests/it/runner.rs`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Generous deadline for clone + `npm install` + dev server start on a loaded 2-core machine.
pub const START_DEADLINE: Duration = Duration::from_secs(90);
/// SYNC_INTERVAL used by the hot-reload tests.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// Allowance on top of 2 × SYNC_INTERVAL for the `git fetch` + `git reset` of one sync and
/// process scheduling on a loaded host. server.js re-reads its file on every request, so there
/// is no dev-server reload delay to account for.
pub const SYNC_ALLOWANCE: Duration = Duration::from_millis(750);

pub fn entrypoint() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/runner/entrypoint.mjs")
}

// ---------------------------------------------------------------------------------------------
// temp dirs, git fixture

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos();
        let dir = std::env::temp_dir().join(format!(
            "runner-test-{tag}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir.canonicalize().unwrap())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const SERVER_JS_V1: &str = r#"const http = require('http');
const fs = require('fs');
const path = require('path');
// Test-only watchdog: exit when the test's temp dir is gone, so nothing outlives a test.
setInterval(() => { if (!fs.existsSync(process.env.TEST_SENTINEL)) process.exit(0); }, 500);
http.createServer((req, res) => {
  if (req.url === '/has-token') { res.end(String(process.env.GIT_TOKEN !== undefined)); return; }
  // Re-read on every request: a change is visible as soon as the runner moves the tree.
  res.end(fs.readFileSync(path.join(__dirname, 'content.txt'), 'utf8').trim());
}).listen(Number(process.env.PORT), process.env.HOST);
"#;

pub const SERVER_JS_WITH_DEP: &str = r#"const http = require('http');
const fs = require('fs');
const dep = require('dep');
setInterval(() => { if (!fs.existsSync(process.env.TEST_SENTINEL)) process.exit(0); }, 500);
http.createServer((req, res) => res.end(dep)).listen(Number(process.env.PORT), process.env.HOST);
"#;

const PACKAGE_JSON_V1: &str = r#"{ "name": "app", "version": "1.0.0", "private": true, "scripts": { "dev": "node server.js" } }"#;

pub const PACKAGE_JSON_WITH_DEP: &str = r#"{
  "name": "app", "version": "1.0.1", "private": true,
  "scripts": { "dev": "node server.js" },
  "dependencies": { "dep": "file:./vendor/dep" }
}"#;

pub struct Fixture {
    tmp: TempDir,
}

impl Fixture {
    /// A bare repo `o/r` (reachable as https://github.com/o/r) whose `main` holds the v1 app.
    pub fn new(tag: &str) -> Self {
        let fx = Self { tmp: TempDir::new(tag) };
        for d in ["home", "remotes/o", "npm-cache", "work"] {
            std::fs::create_dir_all(fx.path(d)).unwrap();
        }
        std::fs::write(fx.path("sentinel"), "").unwrap();
        std::fs::write(
            fx.path("gitconfig"),
            format!(
                "[url \"file://{}/\"]\n\tinsteadOf = https://github.com/\n\
                 [user]\n\tname = Runner Test\n\temail = runner@test.invalid\n\
                 [init]\n\tdefaultBranch = main\n",
                fx.path("remotes").display()
            ),
        )
        .unwrap();
        fx.git(&fx.path("."), &["init", "-q", "--bare", "-b", "main", "remotes/o/r"]);
        let work = fx.work();
        fx.git(&work, &["init", "-q", "-b", "main"]);
        fx.git(&work, &["remote", "add", "origin", "https://github.com/o/r"]);
        fx.write("package.json", PACKAGE_JSON_V1);
        fx.write("server.js", SERVER_JS_V1);
        fx.write("content.txt", "v1");
        fx.commit_and_push("v1");
        fx
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.tmp.0.join(rel)
    }

    pub fn work(&self) -> PathBuf {
        self.path("work")
    }

    /// Where the runner clones (WORKDIR/repo).
    pub fn clone_dir(&self) -> PathBuf {
        self.path("workdir/repo")
    }

    fn base_env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("PATH".to_string(), std::env::var("PATH").unwrap_or_default()),
            ("HOME".to_string(), self.path("home").display().to_string()),
            ("GIT_CONFIG_GLOBAL".to_string(), self.path("gitconfig").display().to_string()),
            ("GIT_CONFIG_NOSYSTEM".to_string(), "1".to_string()),
            ("npm_config_cache".to_string(), self.path("npm-cache").display().to_string()),
            ("npm_config_prefer_offline".to_string(), "true".to_string()),
            ("npm_config_update_notifier".to_string(), "false".to_string()),
            ("TEST_SENTINEL".to_string(), self.path("sentinel").display().to_string()),
        ];
        if let Ok(lang) = std::env::var("LANG") {
            env.push(("LANG".to_string(), lang));
        }
        env
    }

    pub fn git(&self, dir: &Path, args: &[&str]) -> Output {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env_clear()
            .envs(self.base_env())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    pub fn write(&self, rel: &str, content: &str) {
        let file = self.work().join(rel);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, content).unwrap();
    }

    pub fn commit_and_push(&self, msg: &str) {
        let work = self.work();
        self.git(&work, &["add", "-A"]);
        self.git(&work, &["commit", "-q", "-m", msg]);
        self.git(&work, &["push", "-q", "origin", "HEAD:main"]);
    }

    /// Spawn the runner with the fixture's environment plus `extra`; cwd is the temp dir.
    pub fn runner(&self, extra: &[(&str, &str)]) -> Runner {
        let (port, dev_port) = free_ports();
        let mut cmd = Command::new("node");
        cmd.arg(entrypoint())
            .current_dir(&self.tmp.0)
            .env_clear()
            .envs(self.base_env())
            .env("WORKDIR", self.path("workdir"))
            .env("REPO_URL", "https://github.com/o/r")
            .env("REPO_BRANCH", "main")
            .env("PORT", port.to_string())
            .env("DEV_PORT", dev_port.to_string())
            .env("SYNC_INTERVAL", format!("{}ms", SYNC_INTERVAL.as_millis()))
            // Terminal phases keep the status page up this long before the exit the tests await.
            .env("FAILURE_LINGER", "1s")
            .envs(extra.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd.spawn().unwrap();
        let stdout = capture(child.stdout.take().unwrap());
        let stderr = capture(child.stderr.take().unwrap());
        Runner { child, port, stdout, stderr }
    }

    /// Every file under the temp dir (used to prove hostile input created nothing).
    pub fn find_files_named(&self, name: &str) -> Vec<PathBuf> {
        fn walk(dir: &Path, name: &str, found: &mut Vec<PathBuf>) {
            let Ok(entries) = std::fs::read_dir(dir) else { return };
            for e in entries.flatten() {
                let p = e.path();
                if e.file_name() == name {
                    found.push(p.clone());
                }
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    walk(&p, name, found);
                }
            }
        }
        let mut found = Vec::new();
        walk(&self.tmp.0, name, &mut found);
        found
    }
}

/// Two ports free now, for the runner and its dev server. Both are the system's choice: the
/// runner's default dev port (PORT + 1) may be any socket's, a test's connection included
/// (CI once saw the dev server fail with EADDRINUSE there).
fn free_ports() -> (u16, u16) {
    let a = TcpListener::bind("127.0.0.1:0").unwrap();
    let b = TcpListener::bind("127.0.0.1:0").unwrap();
    (a.local_addr().unwrap().port(), b.local_addr().unwrap().port())
}

fn capture(stream: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let buf = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&buf);
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            let mut b = sink.lock().unwrap();
            b.push_str(&line);
            b.push('\n');
        }
    });
    buf
}

// ---------------------------------------------------------------------------------------------
// runner guard

/// The runner child; dropping it stops the runner (SIGTERM, then SIGKILL of its group).
pub struct Runner {
    child: Child,
    port: u16,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl Runner {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn logs(&self) -> String {
        format!("--- stdout ---\n{}--- stderr ---\n{}", self.stdout(), self.stderr())
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    pub fn get(&self, path: &str) -> Option<String> {
        http_get(self.port, path)
    }

    /// Wait until GET `path` answers `want`; panics with the logs after `deadline`.
    pub fn wait_for_body(&mut self, path: &str, want: &str, deadline: Duration) -> Instant {
        let start = Instant::now();
        loop {
            if self.get(path).as_deref() == Some(want) {
                return Instant::now();
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("runner exited ({status}) while waiting for {want:?}\n{}", self.logs());
            }
            assert!(
                start.elapsed() < deadline,
                "no {want:?} on {path} within {deadline:?} (last: {:?})\n{}",
                self.get(path),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Wait for the runner to exit on its own.
    pub fn wait_exit(&mut self, deadline: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the capture threads drain the pipes.
                std::thread::sleep(Duration::from_millis(100));
                return status;
            }
            assert!(
                start.elapsed() < deadline,
                "runner still running after {deadline:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn signal(&self, sig: &str, target: &str) {
        let _ = Command::new("kill")
            .args(["-s", sig, "--", target])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            // SIGTERM lets the runner stop its dev server's process group.
            self.signal("TERM", &self.pid().to_string());
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(10) {
                if self.child.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            self.signal("KILL", &format!("-{}", self.pid()));
            let _ = self.child.wait();
        }
    }
}

/// One HTTP/1.0 GET against 127.0.0.1:port; the body, or None if nothing answered.
fn http_get(port: u16, path: &str) -> Option<String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes()).ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.").then(|| body.to_string())
}

pub fn stderr_lines(r: &Runner) -> Vec<String> {
    r.stderr().lines().filter(|l| !l.trim().is_empty()).map(str::to_string).collect()
}
