//! Hostile rows: each one is refused with a specific error naming the field and the reason.

use fly_preview_controller::model::naming;
use fly_preview_controller::model::validate::{Rules, Spec, validate};

const USER: &str = "d20f481d-f7ac-4c72-8b42-c683320a6b6e";
const PROJECT: &str = "abc-123-def";
const GOOD_URL: &str = "https://github.com/acme/site";

/// (repo url, branch, app name override, expected field, expected words in the reason)
type Case = (&'static str, &'static str, Option<&'static str>, &'static str, &'static str);

fn cases() -> Vec<Case> {
    vec![
        (GOOD_URL, "main; touch /tmp/pwned", None, "github_branch", "whitespace"),
        (GOOD_URL, "main;touch", None, "github_branch", "shell metacharacter ';'"),
        (GOOD_URL, "$(reboot)", None, "github_branch", "shell metacharacter '$'"),
        (GOOD_URL, "`id`", None, "github_branch", "shell metacharacter '`'"),
        (GOOD_URL, "a|b", None, "github_branch", "shell metacharacter '|'"),
        (GOOD_URL, "a&&b", None, "github_branch", "shell metacharacter '&'"),
        (GOOD_URL, "a>b", None, "github_branch", "shell metacharacter '>'"),
        (GOOD_URL, "main\nrm", None, "github_branch", "control character"),
        (GOOD_URL, "ma\0in", None, "github_branch", "control character"),
        (GOOD_URL, "-upload-pack=evil", None, "github_branch", "start with '-'"),
        (GOOD_URL, "--upload-pack=touch", None, "github_branch", "start with '-'"),
        (GOOD_URL, "a..b", None, "github_branch", "'..'"),
        (GOOD_URL, "a~1", None, "github_branch", "'~'"),
        (GOOD_URL, "a^", None, "github_branch", "'^'"),
        (GOOD_URL, "a:b", None, "github_branch", "':'"),
        (GOOD_URL, "a?*", None, "github_branch", "'?'"),
        (GOOD_URL, "a[b", None, "github_branch", "'['"),
        (GOOD_URL, "a\\b", None, "github_branch", "'\\\\'"),
        (GOOD_URL, "x.lock", None, "github_branch", ".lock"),
        (GOOD_URL, "/main", None, "github_branch", "start or end with '/'"),
        (GOOD_URL, "", None, "github_branch", "empty"),
        (GOOD_URL, "@", None, "github_branch", "'@'"),
        (GOOD_URL, "a@{1}", None, "github_branch", "'{'"),
        ("ssh://git@github.com/acme/site", "main", None, "github_repo_url", "https://"),
        ("git@github.com:acme/site.git", "main", None, "github_repo_url", "https://"),
        ("file:///etc/passwd", "main", None, "github_repo_url", "https://"),
        ("http://github.com/acme/site", "main", None, "github_repo_url", "https://"),
        ("https://user:token@github.com/acme/site", "main", None, "github_repo_url", "credentials"),
        ("https://token@github.com/acme/site", "main", None, "github_repo_url", "credentials"),
        ("https://gitlab.com/acme/site", "main", None, "github_repo_url", "not allowed"),
        ("https://github.com.evil.com/acme/site", "main", None, "github_repo_url", "not allowed"),
        ("https://evil.com/github.com/acme", "main", None, "github_repo_url", "not allowed"),
        ("https://gіthub.com/acme/site", "main", None, "github_repo_url", "non-ASCII"),
        ("https://github.com:22/acme/site", "main", None, "github_repo_url", "port"),
        ("https://github.com/acme/site?x=1", "main", None, "github_repo_url", "query"),
        ("https://github.com/acme/site#frag", "main", None, "github_repo_url", "query or fragment"),
        (
            "https://github.com/acme/site/tree/main",
            "main",
            None,
            "github_repo_url",
            "exactly /OWNER/REPO",
        ),
        ("https://github.com/acme", "main", None, "github_repo_url", "exactly /OWNER/REPO"),
        ("https://github.com/-acme/site", "main", None, "github_repo_url", "owner"),
        ("https://github.com/acme/$(id)", "main", None, "github_repo_url", "repository"),
        ("https://github.com/acme/si te", "main", None, "github_repo_url", "whitespace"),
        ("https://github.com/acme/site\n", "main", None, "github_repo_url", "control character"),
        ("https://github.com/acme/..", "main", None, "github_repo_url", "repository"),
        ("", "main", None, "github_repo_url", "missing"),
        (GOOD_URL, "main", Some("roseram-deadbeef"), "fly_app_name", "derived name"),
        (GOOD_URL, "main", Some("other-5aacab32"), "fly_app_name", "derived name"),
        (GOOD_URL, "main", Some("roseram-5aacab32; rm -rf /"), "fly_app_name", "derived name"),
    ]
}

#[test]
fn hostile_rows_are_refused_with_specific_errors() {
    let rules = Rules::default();
    let good_name = naming::app_name("roseram", USER, PROJECT);
    let cases = cases();
    assert!(cases.len() >= 30);
    for (url, branch, name, field, words) in cases {
        let spec = Spec {
            user_id: USER,
            project_id: PROJECT,
            fly_app_name: name.unwrap_or(&good_name),
            repo_url: Some(url),
            branch: Some(branch),
            root_directory: None,
        };
        let err =
            validate(&spec, &rules).expect_err(&format!("accepted {url:?} {branch:?} {name:?}"));
        assert_eq!(err.field, field, "{url:?} {branch:?}: {err}");
        assert!(err.to_string().contains(words), "{url:?} {branch:?}: {err} (wanted {words:?})");
    }
}

#[test]
fn huge_values_are_refused_by_size() {
    let rules = Rules::default();
    let name = naming::app_name("roseram", USER, PROJECT);
    let mb = "a".repeat(1 << 20);
    let url = format!("https://github.com/acme/{mb}");
    let spec = Spec {
        user_id: USER,
        project_id: PROJECT,
        fly_app_name: &name,
        repo_url: Some(&url),
        branch: Some("main"),
        root_directory: None,
    };
    assert!(validate(&spec, &rules).unwrap_err().reason.contains("limit is 2048"));
    let spec = Spec { repo_url: Some(GOOD_URL), branch: Some(&mb), ..spec };
    let err = validate(&spec, &rules).unwrap_err();
    assert_eq!(err.field, "github_branch");
    assert!(err.reason.contains("limit is 255"), "{err}");
    assert!(err.to_string().len() < 200, "messages stay short");
}

#[test]
fn valid_rows_pass_and_other_hosts_can_be_allowed() {
    let name = naming::app_name("roseram", USER, PROJECT);
    let spec = Spec {
        user_id: USER,
        project_id: PROJECT,
        fly_app_name: &name,
        repo_url: Some(GOOD_URL),
        branch: Some("feature/hmr-demo"),
        root_directory: Some("apps/web"),
    };
    assert_eq!(validate(&spec, &Rules::default()), Ok(()));
    let empty = Spec { root_directory: Some(""), ..spec };
    assert_eq!(validate(&empty, &Rules::default()), Ok(()), "empty is the repository root");
    let escape = Spec { root_directory: Some("apps/../../etc"), ..spec };
    let err = validate(&escape, &Rules::default()).unwrap_err();
    assert_eq!(err.field, "root_directory");
    assert!(err.to_string().contains("'..'"), "{err}");
    let gl = Spec { repo_url: Some("https://gitlab.com/acme/site"), ..spec };
    let rules =
        Rules { allowed_hosts: vec!["github.com".into(), "gitlab.com".into()], ..Rules::default() };
    assert_eq!(validate(&gl, &rules), Ok(()));
}
