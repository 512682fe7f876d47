//! Query-string access with repeated keys (`state=a&state=b`) and `metadata.<k>=<v>` filters.

/// Decoded query pairs, in order.
#[derive(Debug, Default, Clone)]
pub(crate) struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub(crate) fn parse(raw: &str) -> Self {
        Self { pairs: url::form_urlencoded::parse(raw.as_bytes()).into_owned().collect() }
    }

    /// The last value for `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Every value for `key`, comma-separated values split, blanks dropped.
    pub(crate) fn list(&self, key: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split(','))
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// `true`/`1` (any case) → true.
    pub(crate) fn flag(&self, key: &str) -> bool {
        self.get(key).is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
    }

    /// `(k, v)` for every `metadata.k=v` pair.
    pub(crate) fn metadata_filters(&self) -> Vec<(&str, &str)> {
        self.pairs
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("metadata.").map(|k| (k, v.as_str())))
            .collect()
    }
}

/// Decodes `%XX` escapes in a path segment (IPv6 addresses may arrive as `%3A`).
pub(crate) fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_and_comma_separated_values() {
        let q = Query::parse(
            "state=started&state=stopped,suspended&metadata.preview-id=42&summary=true",
        );
        assert_eq!(q.list("state"), ["started", "stopped", "suspended"]);
        assert_eq!(q.metadata_filters(), [("preview-id", "42")]);
        assert!(q.flag("summary"));
        assert!(!q.flag("include_deleted"));
        assert_eq!(percent_decode("2a09%3A8280%3a1::1"), "2a09:8280:1::1");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
