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
//!
//! Hostile inputs, token secrecy and the pure detection/validation rules are in
//! `tests/it/runner_inputs.rs`; the fixture and the runner guard in
//! `tests/it/support/runner_fixture.rs`.

use std::time::{Duration, Instant};

use crate::support::runner_fixture::*;

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
