//! The org's app listing, decoded chunk by chunk as the response arrives: only the names of
//! apps on the org's shared private network are kept.
//!
//! # Guarantees
//! The body is never held whole: what is held at any time is one app's JSON (the one being
//! read) and the names kept. A listing of 100,000 apps (~28 MB of JSON) costs the memory of
//! one app, not of its body (held whole and copied once, it raised the daemon's peak RSS by
//! some 60 MB at the start of each full verification).
//! # Caveats
//! The envelope is scanned, not validated: bytes outside the `apps` array other than its
//! structure (keys, other values) are skipped; each app is decoded by serde. An unfinished
//! body (a string or a bracket left open) is an error.

use serde::de::Error as _;

use super::streamed::Sink;
use super::types::App;

/// The decoder of `GET /apps` bodies: `{"total_apps": N, "apps": [{…}, …]}` (`"apps": null`
/// too: Go's empty slice).
#[derive(Debug, Default)]
pub(crate) struct SharedNetworkApps {
    names: Vec<String>,
    /// Brackets and braces open (outside strings).
    depth: u32,
    in_string: bool,
    escaped: bool,
    /// The last string at the envelope's level: the key of the value that follows.
    key: Vec<u8>,
    /// Inside the envelope's `apps` array.
    in_apps: bool,
    /// The app being read, from its `{`.
    item: Vec<u8>,
}

impl SharedNetworkApps {
    /// The names found so far (all of them once the body has been fed and finished).
    pub fn into_names(self) -> Vec<String> {
        self.names
    }

    /// Bytes held for the body besides the names kept (one app and one key, at most).
    #[cfg(test)]
    fn held(&self) -> usize {
        self.item.capacity() + self.key.capacity()
    }

    fn byte(&mut self, b: u8) -> Result<(), serde_json::Error> {
        if self.in_apps && self.depth >= 3 {
            self.item.push(b);
        }
        if self.in_string {
            self.string_byte(b);
            return Ok(());
        }
        let between_apps = matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b',' | b'{' | b']');
        if self.in_apps && self.depth == 2 && !between_apps {
            return Err(serde_json::Error::custom("an app that is not an object"));
        }
        match b {
            b'"' => {
                self.in_string = true;
                if self.depth == 1 {
                    self.key.clear();
                }
            }
            b'{' | b'[' => self.open(b),
            b'}' | b']' => self.close()?,
            _ => {}
        }
        Ok(())
    }

    fn string_byte(&mut self, b: u8) {
        if self.escaped {
            self.escaped = false;
        } else if b == b'\\' {
            self.escaped = true;
        } else if b == b'"' {
            self.in_string = false;
            return;
        }
        if self.depth == 1 {
            self.key.push(b);
        }
    }

    fn open(&mut self, b: u8) {
        self.depth += 1;
        if self.depth == 2 && b == b'[' {
            self.in_apps = self.key == b"apps";
        }
        if self.in_apps && self.depth == 3 {
            self.item.clear();
            self.item.push(b);
        }
    }

    fn close(&mut self) -> Result<(), serde_json::Error> {
        if self.depth == 0 {
            return Err(serde_json::Error::custom("a bracket closed that was never opened"));
        }
        if self.in_apps && self.depth == 3 {
            let app: App = serde_json::from_slice(&self.item)?;
            if app.on_shared_network() {
                self.names.push(app.name);
            }
            self.item.clear();
        }
        self.depth -= 1;
        if self.depth < 2 {
            self.in_apps = false;
        }
        Ok(())
    }
}

impl Sink for SharedNetworkApps {
    fn reset(&mut self) {
        *self = Self::default();
    }

    fn feed(&mut self, chunk: &[u8]) -> Result<(), serde_json::Error> {
        chunk.iter().try_for_each(|&b| self.byte(b))
    }

    fn finish(&mut self) -> Result<(), serde_json::Error> {
        if self.depth > 0 || self.in_string {
            return Err(serde_json::Error::custom("the app list ends unfinished"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(body: &str, chunk: usize) -> Result<SharedNetworkApps, serde_json::Error> {
        let mut d = SharedNetworkApps::default();
        body.as_bytes().chunks(chunk).try_for_each(|c| d.feed(c))?;
        d.finish()?;
        Ok(d)
    }

    #[test]
    fn only_shared_network_names_are_kept_whatever_the_chunks() {
        let body = r#"{"total_apps": 3, "apps": [
            {"name": "a", "network": "default", "organization": {"slug": "o"}},
            {"name": "b\"}]", "network": "b-net"}, {"name": "c", "tags": ["x"]}],
            "more": [{"name": "not-an-app"}]}"#;
        for chunk in [1, 2, 7, body.len()] {
            assert_eq!(decode(body, chunk).unwrap().into_names(), ["a", "c"], "chunk {chunk}");
        }
        for empty in [r#"{"apps": null}"#, r#"{"apps": []}"#, "{}"] {
            assert!(decode(empty, 3).unwrap().into_names().is_empty(), "{empty}");
        }
    }

    #[test]
    fn an_unfinished_or_malformed_listing_is_an_error() {
        for bad in [
            r#"{"apps": [{"name": "a"}"#,
            r#"{"apps": [{"name": "a}]}"#,
            "]",
            r#"{"apps": [1]}"#,
            r#"{"apps": ["a"]}"#,
            r#"{"apps": [[]]}"#,
        ] {
            assert!(decode(bad, 4).is_err(), "{bad}");
        }
    }

    /// A listing of 10,000 apps fed in 16 KB chunks holds one app at a time, never the body.
    #[test]
    fn a_long_listing_is_held_one_app_at_a_time() {
        let app = |i: usize| {
            let net = if i.is_multiple_of(1000) { "default" } else { "own-net" };
            format!(
                r#"{{"id": "id{i}", "name": "pfx-{i}", "network": "{net}", "organization": {{"slug": "o", "name": "O"}}, "machine_count": 1}}"#
            )
        };
        let apps: Vec<String> = (0..10_000).map(app).collect();
        let body = format!(r#"{{"total_apps": 10000, "apps": [{}]}}"#, apps.join(","));
        let mut d = SharedNetworkApps::default();
        let mut most = 0;
        for c in body.as_bytes().chunks(16 * 1024) {
            d.feed(c).unwrap();
            most = most.max(d.held());
        }
        d.finish().unwrap();
        let longest = apps.iter().map(String::len).max().unwrap_or(0);
        assert!(
            most <= 2 * longest.next_power_of_two(),
            "held {most} B of a {} B body",
            body.len()
        );
        assert_eq!(d.into_names().len(), 10);
    }
}
