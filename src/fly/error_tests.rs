use super::*;

const TOKEN: &str = "fm2_topsecret_token_value";

fn classify(status: u16, body: &str) -> FlyError {
    FlyError::from_response(
        status,
        Some("rid-1".into()),
        None,
        body.as_bytes(),
        Classify::default(),
        TOKEN,
    )
}

fn classify_with(status: u16, body: &str, how: Classify) -> FlyError {
    FlyError::from_response(status, None, None, body.as_bytes(), how, TOKEN)
}

#[test]
fn status_codes_map_to_kinds() {
    let cases = [
        (401, "unauthorized"),
        (403, "forbidden"),
        (404, "not_found"),
        (408, "timeout"),
        (409, "lease_conflict"),
        (412, "lease_conflict"),
        (422, "permanent"),
        (400, "permanent"),
        (429, "rate_limited"),
        (500, "transient"),
        (502, "transient"),
        (503, "transient"),
        (302, "permanent"),
    ];
    for (status, kind) in cases {
        let e = classify(status, r#"{"error":"x"}"#);
        assert_eq!(e.kind(), kind, "status {status}");
        assert_eq!(e.status(), Some(status));
        assert_eq!(e.request_id(), Some("rid-1"));
    }
}

#[test]
fn retryable_kinds() {
    assert!(classify(503, "").is_retryable());
    assert!(classify(408, "").is_retryable());
    assert!(classify(429, "").is_retryable());
    assert!(!classify(404, "").is_retryable());
    assert!(!classify(400, "").is_retryable());
    let amb = Classify { ambiguous: true, create_app: false };
    assert!(!classify_with(503, "", amb).is_retryable());
}

#[test]
fn name_taken_by_status_field_or_legacy_message() {
    let e = classify(422, r#"{"error":"Validation failed","status":"name_taken"}"#);
    assert_eq!(e.kind(), "name_taken");
    assert_eq!(e.code(), Some("name_taken"));
    let e = classify(422, r#"{"error":"Validation failed: Name has already been taken"}"#);
    assert_eq!(e.kind(), "name_taken");
    let e = classify(409, r#"{"error":"duplicate","status":"name_taken"}"#);
    assert_eq!(e.kind(), "name_taken");
    let e = classify(422, r#"{"error":"Validation failed: Name under 63 chars"}"#);
    assert_eq!(e.kind(), "permanent");
    let app = Classify { ambiguous: false, create_app: true };
    assert_eq!(classify_with(409, r#"{"error":"unique violation"}"#, app).kind(), "name_taken");
}

#[test]
fn create_machine_failures_are_ambiguous() {
    let amb = Classify { ambiguous: true, create_app: false };
    for status in [408, 500, 502, 503] {
        assert_eq!(classify_with(status, "", amb).kind(), "ambiguous_create", "{status}");
    }
    assert_eq!(classify_with(429, "", amb).kind(), "rate_limited");
    assert_eq!(classify_with(422, "", amb).kind(), "permanent");
}

#[test]
fn message_prefers_message_then_error_then_raw() {
    assert_eq!(classify(400, r#"{"error":"e","message":"m"}"#).message(), "m");
    assert_eq!(classify(400, r#"{"error":"e"}"#).message(), "e");
    assert_eq!(classify(502, "<html>bad gateway</html>").message(), "<html>bad gateway</html>");
    assert_eq!(classify(502, "").message(), "(empty body)");
    assert_eq!(classify(400, r#"{"error":{"nested":1}}"#).message(), r#"{"nested":1}"#);
}

#[test]
fn token_is_redacted_and_message_truncated() {
    let body = format!(r#"{{"error":"bad header FlyV1 {TOKEN} and Bearer {TOKEN}"}}"#);
    let e = classify(400, &body);
    assert!(!e.to_string().contains(TOKEN), "{e}");
    assert!(!format!("{e:?}").contains(TOKEN));
    let long = "x".repeat(5000);
    let e = classify(400, &long);
    assert!(e.message().chars().count() <= MAX_MESSAGE + 1);
}

#[test]
fn multi_token_parts_are_redacted() {
    let s = sanitize("saw fm1r_aaaaaaa and fm2_bbbbbbbb here", "FlyV1 fm1r_aaaaaaa,fm2_bbbbbbbb");
    assert_eq!(s, "saw *** and *** here");
}

#[test]
fn display_includes_status_and_request_id() {
    let e = classify(404, r#"{"error":"app not found"}"#);
    assert_eq!(e.to_string(), "not found: app not found (HTTP 404) [fly-request-id rid-1]");
}

#[test]
fn retry_after_parsing() {
    assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
    assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
    assert_eq!(parse_retry_after("999999"), Some(MAX_RETRY_AFTER));
    assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
    assert_eq!(parse_retry_after("soon"), None);
    let e = FlyError::from_response(
        429,
        None,
        Some(Duration::from_secs(2)),
        b"",
        Classify::default(),
        TOKEN,
    );
    assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
}
