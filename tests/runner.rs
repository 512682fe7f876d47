#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Integration tests for the preview runner (`deploy/runner/entrypoint.mjs`).
//!
//! Each test runs `node deploy/runner/entrypoint.mjs` as a child process. There is no network:
//! the runner only accepts `https://github.com/<owner>/<repo>`, and a test-only global git
//! config (`GIT_CONFIG_GLOBAL`) rewrites that prefix to `file://<tmp>/remotes/` with
//! `url.<base>.insteadOf`, so the production code has no test escape hatch. The app in the
//! bare repo has no registry dependencies (only a local `file:` one), so `npm install` works
//! offline.
//!
//! Requires `node` (>= 20), `npm` and `git` on PATH.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const TOKEN: &str = "ghp_SECRETrunnerTestToken0123456789abcdef";
/// Generous deadline for clone + `npm install` + dev server start on a loaded 2-core machine.
const START_DEADLINE: Duration = Duration::from_secs(90);
/// SYNC_INTERVAL used by the hot-reload tests.
const SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// Allowance on top of 2 × SYNC_INTERVAL for the `git fetch` + `git reset` of one sync and
/// process scheduling on a loaded host. server.js re-reads its file on every request, so there
/// is no dev-server reload delay to account for.
const SYNC_ALLOWANCE: Duration = Duration::from_millis(750);

fn entrypoint() -> PathBuf {
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

const SERVER_JS_WITH_DEP: &str = r#"const http = require('http');
const fs = require('fs');
const dep = require('dep');
setInterval(() => { if (!fs.existsSync(process.env.TEST_SENTINEL)) process.exit(0); }, 500);
http.createServer((req, res) => res.end(dep)).listen(Number(process.env.PORT), process.env.HOST);
"#;

const PACKAGE_JSON_V1: &str = r#"{ "name": "app", "version": "1.0.0", "private": true, "scripts": { "dev": "node server.js" } }"#;

const PACKAGE_JSON_WITH_DEP: &str = r#"{
  "name": "app", "version": "1.0.1", "private": true,
  "scripts": { "dev": "node server.js" },
  "dependencies": { "dep": "file:./vendor/dep" }
}"#;

struct Fixture {
    tmp: TempDir,
}

impl Fixture {
    /// A bare repo `o/r` (reachable as https://github.com/o/r) whose `main` holds the v1 app.
    fn new(tag: &str) -> Self {
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

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.0.join(rel)
    }

    fn work(&self) -> PathBuf {
        self.path("work")
    }

    /// Where the runner clones (WORKDIR/repo).
    fn clone_dir(&self) -> PathBuf {
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

    fn git(&self, dir: &Path, args: &[&str]) -> Output {
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

    fn write(&self, rel: &str, content: &str) {
        let file = self.work().join(rel);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, content).unwrap();
    }

    fn commit_and_push(&self, msg: &str) {
        let work = self.work();
        self.git(&work, &["add", "-A"]);
        self.git(&work, &["commit", "-q", "-m", msg]);
        self.git(&work, &["push", "-q", "origin", "HEAD:main"]);
    }

    /// Spawn the runner with the fixture's environment plus `extra`; cwd is the temp dir.
    fn runner(&self, extra: &[(&str, &str)]) -> Runner {
        let port = free_port();
        let mut cmd = Command::new("node");
        cmd.arg(entrypoint())
            .current_dir(&self.tmp.0)
            .env_clear()
            .envs(self.base_env())
            .env("WORKDIR", self.path("workdir"))
            .env("REPO_URL", "https://github.com/o/r")
            .env("REPO_BRANCH", "main")
            .env("PORT", port.to_string())
            .env("SYNC_INTERVAL", format!("{}ms", SYNC_INTERVAL.as_millis()))
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
    fn find_files_named(&self, name: &str) -> Vec<PathBuf> {
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

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
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
struct Runner {
    child: Child,
    port: u16,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl Runner {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn logs(&self) -> String {
        format!("--- stdout ---\n{}--- stderr ---\n{}", self.stdout(), self.stderr())
    }

    fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    fn get(&self, path: &str) -> Option<String> {
        http_get(self.port, path)
    }

    /// Wait until GET `path` answers `want`; panics with the logs after `deadline`.
    fn wait_for_body(&mut self, path: &str, want: &str, deadline: Duration) -> Instant {
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
    fn wait_exit(&mut self, deadline: Duration) -> ExitStatus {
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

    fn signal(&self, sig: &str, target: &str) {
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

fn stderr_lines(r: &Runner) -> Vec<String> {
    r.stderr().lines().filter(|l| !l.trim().is_empty()).map(str::to_string).collect()
}

// ---------------------------------------------------------------------------------------------
// tests

/// Done-when 1: serves on PORT; a pushed commit is served within 2 × SYNC_INTERVAL without the
/// runner restarting; SIGTERM stops the dev server and exits 0.
#[test]
fn serves_app_and_hot_reloads_pushed_commit_without_restarting() {
    let fx = Fixture::new("reload");
    let mut r = fx.runner(&[]);
    let pid = r.pid();
    r.wait_for_body("/", "v1", START_DEADLINE);

    fx.write("content.txt", "v2");
    fx.commit_and_push("v2");
    let pushed = Instant::now();
    let seen = r.wait_for_body("/", "v2", Duration::from_secs(30));
    let latency = seen - pushed;
    eprintln!("push -> served latency: {latency:?}");
    assert!(
        latency <= SYNC_INTERVAL * 2 + SYNC_ALLOWANCE,
        "change took {latency:?} (> 2 x {SYNC_INTERVAL:?} + {SYNC_ALLOWANCE:?})\n{}",
        r.logs()
    );
    assert!(r.is_running(), "runner must keep running\n{}", r.logs());
    assert_eq!(r.pid(), pid);
    assert_eq!(r.stdout().matches("[runner] cloning").count(), 1, "{}", r.logs());
    assert_eq!(r.stdout().matches("installing dependencies").count(), 1, "{}", r.logs());
    assert!(r.stdout().contains("[dev] "), "dev output is prefixed\n{}", r.logs());

    // SIGTERM: the dev server goes away and the runner exits 0.
    r.signal("TERM", &pid.to_string());
    let status = r.wait_exit(Duration::from_secs(15));
    assert_eq!(status.code(), Some(0), "{}", r.logs());
    assert!(r.get("/").is_none(), "dev server must be stopped with the runner\n{}", r.logs());
}

/// Done-when 2: a dependency change (package.json gains a local `file:` dependency that the
/// code uses) triggers a reinstall and a dev server restart.
#[test]
fn dependency_change_reinstalls_and_restarts_dev_server() {
    let fx = Fixture::new("deps");
    let mut r = fx.runner(&[]);
    let pid = r.pid();
    r.wait_for_body("/", "v1", START_DEADLINE);

    fx.write(
        "vendor/dep/package.json",
        r#"{ "name": "dep", "version": "1.0.0", "main": "index.js" }"#,
    );
    fx.write("vendor/dep/index.js", "module.exports = 'served-by-dep';\n");
    fx.write("package.json", PACKAGE_JSON_WITH_DEP);
    fx.write("server.js", SERVER_JS_WITH_DEP);
    fx.commit_and_push("add dep");

    // `node server.js` has no watcher: new content means install + restart happened.
    r.wait_for_body("/", "served-by-dep", START_DEADLINE);
    assert!(r.is_running(), "{}", r.logs());
    assert_eq!(r.pid(), pid);
    let out = r.stdout();
    assert!(out.contains("dependency files changed"), "{}", r.logs());
    assert_eq!(out.matches("installing dependencies").count(), 2, "{}", r.logs());
    assert_eq!(out.matches("starting dev server").count(), 2, "{}", r.logs());
    assert!(fx.clone_dir().join("node_modules/dep").exists());
    assert!(
        !fx.clone_dir().join("package-lock.json").exists(),
        "npm install must not leave an untracked lockfile behind"
    );
}

/// Done-when 3: a force-push that rewrites history is followed.
#[test]
fn force_push_is_followed() {
    let fx = Fixture::new("force");
    let mut r = fx.runner(&[]);
    r.wait_for_body("/", "v1", START_DEADLINE);

    let work = fx.work();
    fx.git(&work, &["checkout", "-q", "--orphan", "rewritten"]);
    fx.write("content.txt", "rewritten history");
    fx.git(&work, &["add", "-A"]);
    fx.git(&work, &["commit", "-q", "-m", "rewrite"]);
    fx.git(&work, &["push", "-q", "--force", "origin", "rewritten:main"]);
    let new_head = String::from_utf8(fx.git(&work, &["rev-parse", "HEAD"]).stdout).unwrap();

    r.wait_for_body("/", "rewritten history", Duration::from_secs(30));
    assert!(r.is_running(), "{}", r.logs());
    let clone_head =
        String::from_utf8(fx.git(&fx.clone_dir(), &["rev-parse", "HEAD"]).stdout).unwrap();
    assert_eq!(clone_head.trim(), new_head.trim());
}

/// Done-when 4a: a missing branch fails with one clear line.
#[test]
fn missing_branch_exits_nonzero_with_one_clear_line() {
    let fx = Fixture::new("nobranch");
    let mut r = fx.runner(&[("REPO_BRANCH", "nope")]);
    let status = r.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(3), "{}", r.logs());
    let lines = stderr_lines(&r);
    assert_eq!(
        lines,
        vec!["runner: clone failed: branch 'nope' not found in https://github.com/o/r".to_string()],
        "{}",
        r.logs()
    );
}

/// Done-when 4b: an unreachable repository (insteadOf to a path that does not exist) fails
/// with one clear line.
#[test]
fn unreachable_repo_exits_nonzero_with_one_clear_line() {
    let fx = Fixture::new("unreach");
    let mut r = fx.runner(&[("REPO_URL", "https://github.com/o/does-not-exist")]);
    let status = r.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(3), "{}", r.logs());
    let lines = stderr_lines(&r);
    assert_eq!(lines.len(), 1, "{}", r.logs());
    assert!(
        lines[0].starts_with(
            "runner: clone failed: repository https://github.com/o/does-not-exist not reachable: "
        ),
        "{}",
        r.logs()
    );
}

/// Done-when 5: hostile REPO_BRANCH / REPO_URL values are rejected with exit 2 and a message
/// naming the variable; nothing is ever interpreted by a shell.
#[test]
fn hostile_inputs_are_rejected_and_never_reach_a_shell() {
    let fx = Fixture::new("hostile");
    let invalid: &[(&str, &str)] = &[
        ("REPO_BRANCH", "main; touch PWNED"),
        ("REPO_BRANCH", "$(touch PWNED)"),
        ("REPO_BRANCH", "`touch PWNED`"),
        ("REPO_BRANCH", "main\ntouch PWNED"),
        ("REPO_BRANCH", "-b"),
        ("REPO_BRANCH", "--upload-pack=touch PWNED"),
        ("REPO_BRANCH", "--upload-pack=touch"),
        ("REPO_BRANCH", ""),
        ("REPO_BRANCH", "a..b"),
        ("REPO_BRANCH", "feature/"),
        ("REPO_BRANCH", "x.lock"),
        ("REPO_BRANCH", "a@{1}"),
        ("REPO_BRANCH", "@"),
        ("REPO_BRANCH", "a//b"),
        ("REPO_BRANCH", "a:b"),
        ("REPO_BRANCH", &"b".repeat(256)),
        ("REPO_URL", "ssh://git@github.com/o/r"),
        ("REPO_URL", "git@github.com:o/r.git"),
        ("REPO_URL", "file:///tmp/o/r"),
        ("REPO_URL", "http://github.com/o/r"),
        ("REPO_URL", "https://user:pass@github.com/o/r"),
        ("REPO_URL", "https://ghp_inurl@github.com/o/r"),
        ("REPO_URL", "https://gitlab.com/o/r"),
        ("REPO_URL", "https://github.com.evil.example/o/r"),
        ("REPO_URL", "https://github.com:443/o/r"),
        ("REPO_URL", "https://github.com/o/r?x=1"),
        ("REPO_URL", "https://github.com/o/r#frag"),
        ("REPO_URL", "https://github.com/o/r/tree/main"),
        ("REPO_URL", "https://github.com/o"),
        ("REPO_URL", "https://github.com/-o/r"),
        ("REPO_URL", "https://github.com/o/.r"),
        ("REPO_URL", "https://github.com/o/r;touch${IFS}PWNED"),
        ("REPO_URL", "https://github.com/o/r\ntouch PWNED"),
        ("REPO_URL", "--upload-pack=touch PWNED"),
        ("REPO_URL", ""),
        ("SYNC_INTERVAL", "5x"),
        ("PORT", "http"),
    ];
    for (var, value) in invalid {
        let mut r = fx.runner(&[(*var, *value)]);
        let status = r.wait_exit(Duration::from_secs(20));
        assert_eq!(status.code(), Some(2), "{var}={value:?}\n{}", r.logs());
        let lines = stderr_lines(&r);
        assert_eq!(lines.len(), 1, "{var}={value:?}\n{}", r.logs());
        assert!(
            lines[0].starts_with(&format!("runner: invalid {var}: ")),
            "{var}={value:?}: {lines:?}"
        );
        assert!(!fx.clone_dir().exists(), "{var}={value:?}: nothing may be cloned");
        if *var == "REPO_URL" {
            assert!(!lines[0].contains("pass") && !lines[0].contains("ghp_inurl"), "{lines:?}");
        }
    }
    // Valid ref names that would be dangerous as shell text: git receives them as one argv
    // element, so they are just branches that do not exist.
    let weird_but_valid = ["$(touch${IFS}PWNED)", "`touch${IFS}PWNED`", "main;touch${IFS}PWNED"];
    for value in weird_but_valid {
        let mut r = fx.runner(&[("REPO_BRANCH", value)]);
        let status = r.wait_exit(Duration::from_secs(30));
        assert_eq!(status.code(), Some(3), "{value:?}\n{}", r.logs());
        let lines = stderr_lines(&r);
        assert_eq!(
            lines,
            vec![format!(
                "runner: clone failed: branch '{value}' not found in https://github.com/o/r"
            )],
            "{}",
            r.logs()
        );
    }
    assert_eq!(
        fx.find_files_named("PWNED"),
        Vec::<PathBuf>::new(),
        "a hostile value ran as shell text"
    );
}

/// Done-when 6: GIT_TOKEN never shows up in the runner's output, in `.git/` of the clone, or in
/// the dev server's environment; the clone and later syncs still work.
#[test]
fn git_token_is_never_leaked() {
    use base64_forms::forms;
    let fx = Fixture::new("token");
    let mut r = fx.runner(&[("GIT_TOKEN", TOKEN)]);
    r.wait_for_body("/", "v1", START_DEADLINE);
    fx.write("content.txt", "v2");
    fx.commit_and_push("v2");
    r.wait_for_body("/", "v2", Duration::from_secs(30));
    assert_eq!(r.get("/has-token").as_deref(), Some("false"), "dev server must not see GIT_TOKEN");

    let mut haystacks = vec![("runner output".to_string(), r.logs())];
    let mut stack = vec![fx.clone_dir().join(".git")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                haystacks
                    .push((p.display().to_string(), String::from_utf8_lossy(&bytes).into_owned()));
            }
        }
    }
    assert!(haystacks.iter().any(|(name, _)| name.ends_with(".git/config")));
    for (name, text) in &haystacks {
        for f in forms(TOKEN) {
            assert!(!text.contains(&f), "token form {f:?} leaked into {name}");
        }
    }
    drop(r);

    // A failing clone with a token does not print it either.
    let mut r = fx.runner(&[("GIT_TOKEN", TOKEN), ("REPO_BRANCH", "nope")]);
    assert_eq!(r.wait_exit(Duration::from_secs(30)).code(), Some(3));
    for f in forms(TOKEN) {
        assert!(!r.logs().contains(&f), "{}", r.logs());
    }
}

/// A dev server that keeps dying at start makes the runner give up with one clear last line.
#[test]
fn dev_server_crash_loop_exits_nonzero() {
    let fx = Fixture::new("crash");
    fx.write(
        "package.json",
        r#"{ "name": "app", "version": "1.0.0", "private": true, "scripts": { "dev": "exit 7" } }"#,
    );
    fx.commit_and_push("crash");
    let mut r = fx.runner(&[]);
    let status = r.wait_exit(Duration::from_secs(60));
    assert_eq!(status.code(), Some(5), "{}", r.logs());
    let last = stderr_lines(&r).pop().unwrap_or_default();
    assert!(
        last.starts_with("runner: dev server keeps exiting at start (5 times in a row"),
        "{}",
        r.logs()
    );
    assert_eq!(r.stdout().matches("starting dev server").count(), 5, "{}", r.logs());
}

/// The pure parts of the runner (validation, package manager and dev server detection, git auth
/// environment), checked through node against the module's exports.
#[test]
fn detection_table_and_validation_rules() {
    let script = format!(
        r#"
import assert from 'node:assert/strict';
import * as m from {url};
const files = (...names) => (f) => names.includes(f);
// package manager from lockfile
assert.deepEqual(m.detectPackageManager(files('pnpm-lock.yaml', 'package-lock.json')), {{ pm: 'pnpm', lockfile: 'pnpm-lock.yaml' }});
assert.deepEqual(m.detectPackageManager(files('yarn.lock')), {{ pm: 'yarn', lockfile: 'yarn.lock' }});
assert.deepEqual(m.detectPackageManager(files('package-lock.json')), {{ pm: 'npm', lockfile: 'package-lock.json' }});
assert.deepEqual(m.detectPackageManager(files()), {{ pm: 'npm', lockfile: null }});
// install commands
assert.deepEqual(m.installCommand({{ pm: 'npm', lockfile: 'package-lock.json' }}), ['npm', 'ci', '--no-audit', '--no-fund']);
assert.deepEqual(m.installCommand({{ pm: 'npm', lockfile: null }}), ['npm', 'install', '--no-audit', '--no-fund', '--no-package-lock']);
assert.deepEqual(m.installCommand({{ pm: 'pnpm', lockfile: 'pnpm-lock.yaml' }}), ['corepack', 'pnpm', 'install']);
assert.deepEqual(m.installCommand({{ pm: 'yarn', lockfile: 'yarn.lock' }}), ['corepack', 'yarn', 'install']);
// dev commands: dev, else start; vite / next get host+port args; CRA relies on env
assert.deepEqual(m.devCommand('npm', {{ dev: 'vite', start: 'x' }}, 3000).argv, ['npm', 'run', 'dev', '--', '--host', '0.0.0.0', '--port', '3000']);
assert.deepEqual(m.devCommand('pnpm', {{ dev: 'vite --open' }}, 8080).argv, ['corepack', 'pnpm', 'run', 'dev', '--host', '0.0.0.0', '--port', '8080']);
assert.deepEqual(m.devCommand('yarn', {{ dev: 'vite' }}, 3000).argv, ['corepack', 'yarn', 'run', 'dev', '--host', '0.0.0.0', '--port', '3000']);
assert.deepEqual(m.devCommand('npm', {{ dev: 'next dev --turbopack' }}, 3000).argv, ['npm', 'run', 'dev', '--', '-H', '0.0.0.0', '-p', '3000']);
assert.deepEqual(m.devCommand('npm', {{ dev: 'next' }}, 3000).argv, ['npm', 'run', 'dev', '--', '-H', '0.0.0.0', '-p', '3000']);
assert.deepEqual(m.devCommand('npm', {{ start: 'react-scripts start' }}, 3000), {{ script: 'start', argv: ['npm', 'run', 'start'] }});
assert.deepEqual(m.devCommand('npm', {{ dev: 'vitest' }}, 3000).argv, ['npm', 'run', 'dev']);
assert.deepEqual(m.devCommand('npm', {{ dev: 'next build' }}, 3000).argv, ['npm', 'run', 'dev']);
assert.equal(m.devCommand('npm', {{ build: 'vite build' }}, 3000), null);
assert.equal(m.devCommand('npm', undefined, 3000), null);
// child environment binds 0.0.0.0:PORT and never carries the token
const env = m.childEnv({{ GIT_TOKEN: 't', FLY_APP_NAME: 'roseram-5aacab32', PATH: '/bin' }}, 4000);
assert.equal(env.GIT_TOKEN, undefined);
assert.equal(env.PORT, '4000');
assert.equal(env.HOST, '0.0.0.0');
assert.equal(env.HOSTNAME, '0.0.0.0');
assert.equal(env.BROWSER, 'none');
assert.equal(env.__VITE_ADDITIONAL_SERVER_ALLOWED_HOSTS, 'roseram-5aacab32.fly.dev');
// dependency change detection
assert.equal(m.dependenciesChanged(['src/App.jsx']), false);
assert.equal(m.dependenciesChanged(['package.json']), true);
assert.equal(m.dependenciesChanged(['packages/web/pnpm-lock.yaml']), true);
// token goes to git only as an http.<url>.extraheader through GIT_CONFIG_*
assert.deepEqual(m.gitAuthEnv({{}}, 'github.com', 'tok'), {{
  GIT_CONFIG_COUNT: '1',
  GIT_CONFIG_KEY_0: 'http.https://github.com/.extraheader',
  GIT_CONFIG_VALUE_0: 'Authorization: Basic ' + Buffer.from('x-access-token:tok').toString('base64'),
}});
assert.equal(m.gitAuthEnv({{ GIT_CONFIG_COUNT: '2' }}, 'github.com', 'tok').GIT_CONFIG_KEY_2, 'http.https://github.com/.extraheader');
assert.deepEqual(m.gitAuthEnv({{}}, 'github.com', null), {{}});
assert.equal(m.makeRedactor('tok')('x tok y ' + Buffer.from('x-access-token:tok').toString('base64')), 'x [REDACTED] y [REDACTED]');
// validation
const hosts = ['github.com'];
assert.deepEqual(m.validateRepoUrl('https://github.com/o/r', hosts), {{ url: 'https://github.com/o/r', host: 'github.com', owner: 'o', repo: 'r' }});
assert.equal(m.validateRepoUrl('https://GitHub.com/My-Org/my.repo_1.git', hosts).url, 'https://github.com/My-Org/my.repo_1.git');
assert.equal(m.validateRepoUrl('https://gitlab.com/o/r', m.parseAllowedHosts('github.com, GitLab.com')).host, 'gitlab.com');
for (const bad of ['https://github.com/o/r.git.git/', 'https://github.com/o/%2e%2e', 'https://github.com//r', 'https://github.com/o/.git']) {{
  assert.throws(() => m.validateRepoUrl(bad, hosts), m.InputError, bad);
}}
for (const ok of ['main', 'feature/x-1', 'release-1.2', 'a@b', 'ümlaut', 'x'.repeat(255)]) assert.equal(m.validateBranch(ok), ok);
assert.equal(m.validateBranch(undefined), 'main');
for (const bad of ['a.', '/a', 'a b', 'a\tb', 'a~1', 'a^', 'a?', 'a*', 'a[b', 'a\\b', 'a/.b', 'a\x7f']) {{
  assert.throws(() => m.validateBranch(bad), m.InputError, bad);
}}
assert.equal(m.parseDuration('500ms', 'X', '5s'), 500);
assert.equal(m.parseDuration('5s', 'X', '5s'), 5000);
assert.equal(m.parseDuration('1m', 'X', '5s'), 60000);
assert.equal(m.parseDuration(undefined, 'X', '5s'), 5000);
for (const bad of ['5', 's', '1h', '-1s', '1.5s', '0ms']) assert.throws(() => m.parseDuration(bad, 'X', '5s'), m.InputError, bad);
assert.equal(m.parsePort(undefined), 3000);
for (const bad of ['0', '65536', '80a', ' 80']) assert.throws(() => m.parsePort(bad), m.InputError, bad);
console.log('ok');
"#,
        url = serde_json::to_string(&format!("file://{}", entrypoint().display())).unwrap()
    );
    let out = Command::new("node").args(["--input-type=module", "-e", &script]).output().unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok",
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

mod base64_forms {
    /// The token and the encodings it could appear in (base64 of `x-access-token:TOKEN`, as
    /// sent in the Authorization header, and of the bare token).
    pub fn forms(token: &str) -> Vec<String> {
        vec![
            token.to_string(),
            b64(format!("x-access-token:{token}").as_bytes()),
            b64(token.as_bytes()),
        ]
    }

    fn b64(input: &[u8]) -> String {
        const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in input.chunks(3) {
            let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}
