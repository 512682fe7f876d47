//! The command line as users and operators meet it (the real binary, a clean environment):
//! - `app-name` prints the derived Fly app name;
//! - bad configuration exits with status 2 and exactly one line on stderr naming the
//!   setting, nothing on stdout, no panic, no backtrace (even with `RUST_BACKTRACE=1`).
//!
//! The simulator's own binary (`fly-sim`) is tested in `crates/fly-sim/tests/cli.rs`.

use std::process::{Command, Output, Stdio};

use crate::support::USER_A;

const BIN: &str = env!("CARGO_BIN_EXE_fly-preview-controller");

/// The binary with an empty environment (cargo's `[env]` sets DATABASE_URL for tests, and a
/// developer's shell may set more), plus `env`, and `RUST_BACKTRACE=1` so a panic would show.
fn cli(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_clear().env("RUST_BACKTRACE", "1").stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Exit status 2, nothing on stdout, one stderr line that names `setting`, no panic.
#[track_caller]
fn assert_config_error(args: &[&str], env: &[(&str, &str)], setting: &str) {
    let out = cli(args, env);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    let ctx =
        format!("`{}` with env {env:?}\nstdout: {stdout:?}\nstderr: {stderr:?}", args.join(" "));
    assert_eq!(out.status.code(), Some(2), "{ctx}");
    assert!(stdout.is_empty(), "nothing on stdout: {ctx}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one line: {ctx}");
    assert!(lines[0].starts_with("error: "), "{ctx}");
    assert!(lines[0].contains(setting), "the line names {setting}: {ctx}");
    for word in ["panicked", "backtrace", "RUST_BACKTRACE", "stack backtrace"] {
        assert!(!stderr.contains(word), "{word}: {ctx}");
    }
}

#[test]
fn app_name_prints_the_derived_name() {
    let out = cli(&["app-name", "--user-id", USER_A, "--project-id", "abc-123-def"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "roseram-5aacab32\n");
    assert_eq!(text(&out.stderr), "");
    // the same through the environment
    let env = [("PREVIEW_USER_ID", USER_A), ("PREVIEW_PROJECT_ID", "abc-123-def")];
    let out = cli(&["app-name"], &env);
    assert_eq!(text(&out.stdout), "roseram-5aacab32\n");
    let out = cli(&["app-name", "--app-prefix", "acme-pr"], &env);
    assert_eq!(text(&out.stdout), "acme-pr-5aacab32\n");
}

#[test]
fn missing_database_url_is_a_configuration_error() {
    for cmd in ["migrate", "status"] {
        assert_config_error(&[cmd], &[], "DATABASE_URL");
        assert_config_error(&[cmd], &[("DATABASE_URL", "  ")], "DATABASE_URL");
        assert_config_error(&[cmd], &[("DATABASE_URL", "mysql://u@h/db")], "DATABASE_URL");
    }
}

#[test]
fn bad_run_settings_are_configuration_errors() {
    let db = ("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none");
    let token = ("FLY_API_TOKEN", "fo1_test");
    let complete = [db, token];
    // unparsable durations, as flags and from the environment
    assert_config_error(&["run", "--poll-interval", "5x"], &complete, "poll-interval");
    assert_config_error(&["run"], &[db, token, ("POLL_INTERVAL", "5x")], "POLL_INTERVAL");
    assert_config_error(&["run", "--lease-duration", "soon"], &complete, "lease-duration");
    // malformed or unusable URLs
    assert_config_error(&["run", "--fly-api-url", "not a url"], &complete, "FLY_API_URL");
    assert_config_error(
        &["run"],
        &[db, token, ("FLY_API_URL", "ftp://api.example")],
        "FLY_API_URL",
    );
    // bad prefix, out-of-range numbers, inconsistent settings
    assert_config_error(&["run", "--app-prefix", "Bad_Prefix"], &complete, "APP_PREFIX");
    assert_config_error(&["run", "--concurrency", "0"], &complete, "concurrency");
    assert_config_error(&["run", "--lease-duration", "1s"], &complete, "LEASE_DURATION");
    assert_config_error(
        &["run", "--backoff-base", "10s", "--backoff-cap", "1s"],
        &complete,
        "BACKOFF",
    );
    assert_config_error(&["run", "--listen-addr", "nowhere"], &complete, "listen-addr");
    assert_config_error(&["run", "--log-format", "xml"], &complete, "log-format");
    assert_config_error(&["run"], &[db, token, ("PRICE_TABLE", "gpu=1")], "PRICE_TABLE");
    // missing secrets
    assert_config_error(&["run"], &[db], "FLY_API_TOKEN");
    assert_config_error(&["run"], &[token], "DATABASE_URL");
}

#[test]
fn bad_app_prefix_is_a_configuration_error() {
    let base = ["app-name", "--user-id", USER_A, "--project-id", "abc-123-def"];
    for prefix in ["Bad_Prefix", "", "-x", "x-", &"a".repeat(60)] {
        let flag = format!("--app-prefix={prefix}");
        let args: Vec<&str> = base.iter().copied().chain([flag.as_str()]).collect();
        assert_config_error(&args, &[], "APP_PREFIX");
    }
    assert_config_error(&base, &[("APP_PREFIX", "Bad_Prefix")], "APP_PREFIX");
}

#[test]
fn usage_errors_are_one_line() {
    assert_config_error(&["no-such-command"], &[], "no-such-command");
    assert_config_error(&["run", "--no-such-flag"], &[], "--no-such-flag");
}

/// Clap puts a missing argument on the line after "the following required arguments were not
/// provided:"; `cli::clap_error` joins those lines, so the one line still names it.
#[test]
fn missing_required_argument_is_named() {
    assert_config_error(&["app-name", "--user-id", USER_A], &[], "--project-id");
}

/// A DATABASE_URL that does not parse is a configuration error (exit 2), not a failure to
/// connect (exit 1).
#[test]
fn unparsable_database_url_is_a_configuration_error() {
    assert_config_error(
        &["migrate"],
        &[("DATABASE_URL", "postgres://u:p@127.0.0.1:notaport/db")],
        "DATABASE_URL",
    );
}

/// `ConfigError` names the setting, so the prefix rule's own message must not name it again
/// ("APP_PREFIX APP_PREFIX must …").
#[test]
fn app_prefix_error_names_the_setting_once() {
    let out =
        cli(&["app-name", "--user-id", USER_A, "--project-id", "p", "--app-prefix", "Bad"], &[]);
    let stderr = text(&out.stderr);
    assert_eq!(stderr.matches("APP_PREFIX").count(), 1, "{stderr:?}");
}
