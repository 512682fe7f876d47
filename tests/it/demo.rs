//! The README's main command: `demo` converges every sample preview and says so.

use std::process::Command;

#[test]
fn demo_converges_every_sample_and_explains_what_happened() {
    let out = Command::new(env!("CARGO_BIN_EXE_fly-preview-controller"))
        .args(["demo", "--exit-when-converged", "--listen-addr", "127.0.0.1:0"])
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("All sample previews converged"), "{stdout}");
    let last = stdout.rsplit("previews (live").next().unwrap();
    let statuses: Vec<&str> = last
        .lines()
        .filter(|l| l.starts_with("roseram-"))
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    let count = |s: &str| statuses.iter().filter(|x| **x == s).count();
    assert_eq!((count("running"), count("stopped"), count("error")), (3, 1, 2), "{last}");
    assert!(last.contains("exit code 128"), "{last}");
    assert!(last.contains("invalid github_branch"), "{last}");
    assert!(stdout.contains("/metrics") && stdout.contains("Ctrl-C"), "{stdout}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
