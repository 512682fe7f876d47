//! Runner input handling and secrecy (`deploy/runner/entrypoint.mjs`): hostile REPO_* values,
//! GIT_TOKEN never leaking, and the pure detection/validation rules checked through node.
//! Same setup and requirements as `tests/runner.rs` (`node` >= 20, `npm`, `git` on PATH).

use std::path::PathBuf;
use std::process::Command;
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
