//! Runner input handling and secrecy (`deploy/runner/entrypoint.mjs`): hostile REPO_* values,
//! GIT_TOKEN never leaking, and the pure detection/validation rules checked through node.
//! Same setup and requirements as `tests/it/runner.rs` (`node` >= 20, `npm`, `git` on PATH).

use std::path::PathBuf;
use std::time::Duration;

use crate::support::runner_fixture::*;

const TOKEN: &str = "ghp_SECRETrunnerTestToken0123456789abcdef";

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
    let weird_but_valid = ["a#b", "a+b", "a=b,c%d"];
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

// The pure parts of the runner (validation, package-manager and dev-server detection, git
// auth environment) are unit-tested by `node --test deploy/runner/test/` (CI runs it).

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
