//! Pure validation of a row's spec before anything is sent to Fly. Hostile strings are data:
//! nothing here (or downstream) ever splices them into shell text, and each failure names
//! the field and the reason so the web app can show it.

use crate::model::{invisible, naming};

/// Longest repo URL we accept; GitHub URLs are far shorter.
pub const MAX_URL_LEN: usize = 2048;
/// Git allows long ref names, but Fly env values and UIs do not need more.
pub const MAX_BRANCH_LEN: usize = 255;
/// Longest `root_directory` accepted.
pub const MAX_ROOT_DIRECTORY_LEN: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
pub struct ValidationError {
    pub field: &'static str,
    pub reason: String,
}

impl ValidationError {
    fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self { field, reason: reason.into() }
    }
}

/// Settings the rules depend on.
#[derive(Debug, Clone)]
pub struct Rules {
    pub prefix: String,
    pub allowed_hosts: Vec<String>,
}

impl Default for Rules {
    fn default() -> Self {
        Self { prefix: naming::DEFAULT_PREFIX.into(), allowed_hosts: vec!["github.com".into()] }
    }
}

/// The parts of a row that decide what is deployed.
#[derive(Debug, Clone, Copy)]
pub struct Spec<'a> {
    pub user_id: &'a str,
    pub project_id: &'a str,
    pub fly_app_name: &'a str,
    pub repo_url: Option<&'a str>,
    pub branch: Option<&'a str>,
    /// The app's folder inside the repository; `None` or empty = the repository root.
    pub root_directory: Option<&'a str>,
}

/// Validates a whole spec; the first failure wins.
pub fn validate(spec: &Spec<'_>, rules: &Rules) -> Result<(), ValidationError> {
    let expected = naming::app_name(&rules.prefix, spec.user_id, spec.project_id);
    if spec.fly_app_name != expected {
        return Err(ValidationError::new(
            "fly_app_name",
            format!(
                "must equal the derived name {expected:?} (found {:?})",
                clip(spec.fly_app_name)
            ),
        ));
    }
    let url = spec.repo_url.filter(|u| !u.is_empty()).ok_or_else(|| {
        ValidationError::new(
            "github_repo_url",
            "is missing; set it to https://github.com/OWNER/REPO",
        )
    })?;
    repo_url(url, &rules.allowed_hosts)?;
    branch(spec.branch.unwrap_or("main"))?;
    spec.root_directory.filter(|d| !d.is_empty()).map_or(Ok(()), root_directory)
}

fn root_err(reason: impl Into<String>) -> ValidationError {
    ValidationError::new("root_directory", reason)
}

/// The app's folder: a path relative to the repository root that stays inside it.
pub fn root_directory(d: &str) -> Result<(), ValidationError> {
    if d.len() > MAX_ROOT_DIRECTORY_LEN {
        return Err(root_err(format!(
            "is {} bytes long; the limit is {MAX_ROOT_DIRECTORY_LEN}",
            d.len()
        )));
    }
    if let Some(c) = d.chars().find(|c| c.is_control()) {
        return Err(root_err(format!("contains the control character {c:?}")));
    }
    if let Some(c) = d.chars().find(|c| is_format_char(*c)) {
        return Err(root_err(format!(
            "contains the invisible formatting character U+{:04X}",
            u32::from(c)
        )));
    }
    if d.starts_with('/') {
        return Err(root_err(format!(
            "must be relative to the repository root (found {:?}; write it without the leading '/')",
            clip(d)
        )));
    }
    if d.contains('\\') {
        return Err(root_err("must separate folders with '/', not '\\'"));
    }
    if d.split('/').any(|seg| seg == "..") {
        return Err(root_err(
            "must not contain a '..' folder (it has to stay inside the repository)",
        ));
    }
    Ok(())
}

/// Shows at most 60 characters of a hostile value in a message.
fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(60).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

fn url_err(reason: impl Into<String>) -> ValidationError {
    ValidationError::new("github_repo_url", reason)
}

/// The part after `https://` (the scheme in any case).
fn strip_https(raw: &str) -> Option<&str> {
    let head = raw.get(..8)?;
    head.eq_ignore_ascii_case("https://").then(|| &raw[8..])
}

/// The URL as handed to the machine: scheme and host lowercased (hosts compare
/// case-insensitively), owner and repository as written. Call on a validated URL.
pub fn normalize_repo_url(raw: &str) -> String {
    let Some(rest) = strip_https(raw) else { return raw.to_owned() };
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    format!("https://{}/{path}", host.to_ascii_lowercase())
}

/// `https://<allowed host>/<owner>/<repo>[.git]`, nothing else.
pub fn repo_url(raw: &str, allowed_hosts: &[String]) -> Result<(), ValidationError> {
    if raw.len() > MAX_URL_LEN {
        return Err(url_err(format!("is {} bytes long; the limit is {MAX_URL_LEN}", raw.len())));
    }
    if let Some(c) = raw.chars().find(|c| c.is_control() || c.is_whitespace()) {
        return Err(url_err(format!("contains whitespace or a control character ({c:?})")));
    }
    if !raw.is_ascii() {
        return Err(url_err("contains non-ASCII characters (look-alike hosts are refused)"));
    }
    let rest = strip_https(raw)
        .ok_or_else(|| url_err(format!("must start with https:// (found {:?})", clip(raw))))?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if authority.contains('@') {
        return Err(url_err("must not contain credentials"));
    }
    if authority.contains(':') {
        return Err(url_err("must not name a port"));
    }
    if raw.contains('?') || raw.contains('#') {
        return Err(url_err("must not contain a query or fragment"));
    }
    let host = authority.to_ascii_lowercase();
    if !allowed_hosts.iter().any(|h| h.eq_ignore_ascii_case(&host)) {
        let allowed = allowed_hosts.join(", ");
        return Err(url_err(format!("host {:?} is not allowed (allowed: {allowed})", clip(&host))));
    }
    repo_path(path)
}

fn repo_path(path: &str) -> Result<(), ValidationError> {
    let mut parts = path.split('/');
    let (owner, repo) = match (parts.next(), parts.next(), parts.next()) {
        (Some(o), Some(r), None) => (o, r.strip_suffix(".git").unwrap_or(r)),
        _ => return Err(url_err("path must be exactly /OWNER/REPO")),
    };
    for (what, seg) in [("owner", owner), ("repository", repo)] {
        let ok_chars =
            seg.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if seg.is_empty() || !ok_chars || seg.starts_with(['-', '.']) {
            return Err(url_err(format!(
                "{what} {:?} must be letters, digits, '.', '_' or '-' and not start with '-' or '.'",
                clip(seg)
            )));
        }
    }
    Ok(())
}

fn branch_err(reason: impl Into<String>) -> ValidationError {
    ValidationError::new("github_branch", reason)
}

/// A branch name git would accept as a ref (`git check-ref-format --branch`), minus the
/// characters that are legal in git but dangerous or confusing elsewhere.
pub fn branch(b: &str) -> Result<(), ValidationError> {
    if b.is_empty() {
        return Err(branch_err("must not be empty"));
    }
    if b.len() > MAX_BRANCH_LEN {
        return Err(branch_err(format!(
            "is {} bytes long; the limit is {MAX_BRANCH_LEN}",
            b.len()
        )));
    }
    if let Some(c) = b.chars().find(|c| c.is_control() || c.is_whitespace()) {
        return Err(branch_err(format!("contains whitespace or a control character ({c:?})")));
    }
    if let Some(c) = b.chars().find(|c| is_format_char(*c)) {
        return Err(branch_err(format!(
            "contains the invisible formatting character U+{:04X} (direction overrides, \
             zero-width characters, BOM and tag characters are refused)",
            u32::from(c)
        )));
    }
    if let Some(c) = b.chars().find(|c| invisible::is_invisible(*c)) {
        return Err(branch_err(format!(
            "contains the invisible character U+{:04X} (blank fillers and variation selectors \
             are refused)",
            u32::from(c)
        )));
    }
    if let Some(c) = invisible::lone_mark(b) {
        return Err(branch_err(format!(
            "contains the combining mark U+{:04X} with no letter before it",
            u32::from(c)
        )));
    }
    if let Some(c) = b.chars().find(|c| "~^:?*[\\".contains(*c)) {
        return Err(branch_err(format!("contains {c:?}, which git forbids in ref names")));
    }
    if let Some(c) = b.chars().find(|c| "$`;&|<>(){}'\"!".contains(*c)) {
        return Err(branch_err(format!("contains the shell metacharacter {c:?}")));
    }
    if b.starts_with('-') {
        return Err(branch_err("must not start with '-' (it would read as an option)"));
    }
    ref_shape(b)
}

/// Unicode format characters (general category Cf, which can reorder or hide text: bidi
/// embeddings, overrides and isolates, zero-width characters, BOM, tags, …), plus the whole
/// tag block and the interlinear annotation controls.
pub fn is_format_char(c: char) -> bool {
    matches!(
        u32::from(c),
        0x00AD
            | 0x0600..=0x0605
            | 0x061C
            | 0x06DD
            | 0x070F
            | 0x0890..=0x0891
            | 0x08E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0000..=0xE007F
    )
}

fn ref_shape(b: &str) -> Result<(), ValidationError> {
    if b.contains("..") || b.contains("@{") || b.contains("//") || b == "@" {
        return Err(branch_err("must not contain '..', '@{', '//' or be '@'"));
    }
    if b.starts_with('/') || b.ends_with('/') || b.ends_with('.') {
        return Err(branch_err("must not start or end with '/' or end with '.'"));
    }
    if b.split('/').any(|c| c.starts_with('.') || c.ends_with(".lock")) {
        return Err(branch_err("no path component may start with '.' or end with '.lock'"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_values() {
        let hosts = vec!["github.com".to_string()];
        for u in [
            "https://github.com/vercel/next-learn",
            "https://github.com/a/b.git",
            "https://GitHub.com/a_b/c.d",
        ] {
            assert_eq!(repo_url(u, &hosts), Ok(()), "{u}");
        }
        for b in
            ["main", "feature/hmr-demo", "release-1.2", "v1.0.0", "dependabot/npm_and_yarn/x-1.2"]
        {
            assert_eq!(branch(b), Ok(()), "{b}");
        }
    }

    #[test]
    fn hosts_are_normalised_and_format_characters_refused() {
        assert_eq!(
            normalize_repo_url("HTTPS://GitHub.COM/My-Org/Repo.git"),
            "https://github.com/My-Org/Repo.git"
        );
        for c in ['\u{202E}', '\u{2066}', '\u{200B}', '\u{2060}', '\u{FEFF}', '\u{E0041}'] {
            let err = branch(&format!("ma{c}in")).unwrap_err();
            assert!(err.reason.contains("invisible formatting"), "{err}");
        }
        assert_eq!(branch("日本語-branch"), Ok(()));
    }

    #[test]
    fn missing_url_names_the_field() {
        let user = "d20f481d-f7ac-4c72-8b42-c683320a6b6e";
        let spec = Spec {
            user_id: user,
            project_id: "p",
            fly_app_name: &naming::app_name("roseram", user, "p"),
            repo_url: None,
            branch: Some("main"),
            root_directory: None,
        };
        let err = validate(&spec, &Rules::default()).unwrap_err();
        assert_eq!(err.field, "github_repo_url");
        assert!(err.to_string().contains("missing"), "{err}");
    }
}
