//! The naming rule shared with the web app, byte for byte:
//! `{prefix}-{first 8 hex chars of md5(user_id + "-" + project_id)}`.

use md5::{Digest, Md5};

pub const DEFAULT_PREFIX: &str = "roseram";
/// Fly app names: lowercase letters, digits and dashes, at most 63 characters.
pub const MAX_APP_NAME_LEN: usize = 63;
const HASH_LEN: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    #[error("must not be empty")]
    Empty,
    #[error("must use only lowercase letters, digits and dashes (found {0:?})")]
    BadChar(char),
    #[error("must start with a letter and must not end with a dash")]
    BadEdge,
    #[error("is too long: app names are at most 63 characters, so the prefix may be at most 54")]
    TooLong,
}

/// Checks a configured prefix so that every derived name is a valid Fly app name.
pub fn validate_prefix(prefix: &str) -> Result<(), PrefixError> {
    let first = prefix.chars().next().ok_or(PrefixError::Empty)?;
    if let Some(c) = prefix.chars().find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '-')) {
        return Err(PrefixError::BadChar(c));
    }
    if !first.is_ascii_lowercase() || prefix.ends_with('-') {
        return Err(PrefixError::BadEdge);
    }
    if prefix.len() + 1 + HASH_LEN > MAX_APP_NAME_LEN {
        return Err(PrefixError::TooLong);
    }
    Ok(())
}

/// Derives the Fly app name for a (user, project) pair. `project_id` must be the id's
/// canonical text form (a uuid column is read as `project_id::text`).
pub fn app_name(prefix: &str, user_id: &str, project_id: &str) -> String {
    let digest = Md5::digest(format!("{user_id}-{project_id}").as_bytes());
    let mut hex = String::with_capacity(HASH_LEN);
    for byte in digest.iter().take(HASH_LEN / 2) {
        hex.push_str(&format!("{byte:02x}"));
    }
    format!("{prefix}-{hex}")
}

/// The private (6PN) network of a preview app: one per app, so previews cannot reach each
/// other or anything else in the org over Fly's private network.
pub fn network_name(app_name: &str) -> String {
    format!("{app_name}-net")
}

/// The public URL of a preview app.
pub fn preview_url(app_name: &str) -> String {
    format!("https://{app_name}.fly.dev")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_web_app_example() {
        let name = app_name("roseram", "d20f481d-f7ac-4c72-8b42-c683320a6b6e", "abc-123-def");
        assert_eq!(name, "roseram-5aacab32");
        assert_eq!(preview_url(&name), "https://roseram-5aacab32.fly.dev");
    }

    #[test]
    fn matches_postgres_md5_for_uuid_projects() {
        // left(md5('5b0c7f3e-2a41-4d8e-9c6b-0e1f2a3b4c5d-3e9c9b3b-1d3b-4f8c-8a3d-9c6f4e5d2b34'), 8)
        let name = app_name(
            "roseram",
            "5b0c7f3e-2a41-4d8e-9c6b-0e1f2a3b4c5d",
            "3e9c9b3b-1d3b-4f8c-8a3d-9c6f4e5d2b34",
        );
        assert_eq!(name.len(), "roseram-".len() + 8);
        assert!(name[8..].chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    }

    #[test]
    fn prefix_rules() {
        assert_eq!(validate_prefix("roseram"), Ok(()));
        assert_eq!(validate_prefix("pr-2"), Ok(()));
        assert_eq!(validate_prefix(""), Err(PrefixError::Empty));
        assert_eq!(validate_prefix("Rose"), Err(PrefixError::BadChar('R')));
        assert_eq!(validate_prefix("a_b"), Err(PrefixError::BadChar('_')));
        assert_eq!(validate_prefix("-a"), Err(PrefixError::BadEdge));
        assert_eq!(validate_prefix("1a"), Err(PrefixError::BadEdge));
        assert_eq!(validate_prefix("a-"), Err(PrefixError::BadEdge));
        assert_eq!(validate_prefix(&"a".repeat(54)), Ok(()));
        assert_eq!(validate_prefix(&"a".repeat(55)), Err(PrefixError::TooLong));
    }
}
