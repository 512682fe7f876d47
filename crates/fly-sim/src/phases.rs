//! What the simulated preview runner does, by `REPO_BRANCH`, and what its readiness check
//! answers (the runner's `GET /__preview/ready` body: `<phase>: <sentence>`, then output
//! lines), as deploy/runner's contract says.

/// `REPO_BRANCH` values whose runner exits after starting: (branch, exit code, killed for
/// memory, the `dev` check's output it leaves behind).
pub(crate) const EXIT_BRANCHES: &[(&str, i64, bool, &str)] = &[
    (
        "sim-clone-failed",
        3,
        false,
        "clone_failed: git could not clone branch sim-clone-failed\nfatal: Remote branch sim-clone-failed not found in upstream origin",
    ),
    ("sim-no-dev-script", 4, false, "no_script: package.json has no \"dev\" or \"start\" script"),
    (
        "sim-install-private",
        4,
        false,
        "install_failed: the package @acme/private is private and needs NPM_TOKEN\nnpm ERR! code E404\nnpm ERR! 404 Not Found - GET https://registry.npmjs.org/@acme%2fprivate - Not found",
    ),
    (
        "sim-dev-crashloop",
        5,
        false,
        "starting: the dev server exited with code 1 before it served\nError: Cannot find module '/app/server.js'",
    ),
    ("sim-install-timeout", 6, false, "installing: npm ci did not finish within 5m"),
    ("sim-oom", 137, true, ""),
];

/// `REPO_BRANCH` whose dev server serves, then crash-loops (runner exit 7 after the linger).
pub(crate) const CRASHLOOP_BRANCH: &str = "sim-crashloop";

/// What the runner's readiness answers while the dev server is coming up.
pub(crate) const STARTING_BODY: &str = "starting: waiting for the dev server to answer";
/// What it answers after a crash loop.
pub(crate) const CRASHLOOP_BODY: &str = "crashloop: the dev server crashed 5 times within 2 minutes\nsrc/main.ts:3:7: ERROR: Expected \";\" but found \"x\"\nnode:internal/process: exited with code 1";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_exit_body_starts_with_a_runner_phase() {
        let phases = ["clone_failed", "no_script", "install_failed", "starting", "installing"];
        for (branch, _, oom, body) in EXIT_BRANCHES {
            let phase = body.split_once(": ").map(|(p, _)| p).unwrap_or_default();
            assert!(*oom || phases.contains(&phase), "{branch}: {body}");
            assert!(body.len() <= 1024);
        }
    }
}
