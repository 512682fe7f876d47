//! The org's app listing, decoded one app at a time: only the names of apps on the org's
//! shared private network are kept, so a listing of every app costs its response body, not
//! a decoded copy of every app.

use std::fmt;

use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::types::App;

/// `GET /apps`: the names of the listed apps on the org's shared network.
#[derive(Debug, Default)]
pub(crate) struct SharedNetworkApps(pub Vec<String>);

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct AppsEnvelope {
    pub apps: SharedNetworkApps,
}

impl<'de> Deserialize<'de> for SharedNetworkApps {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Names)
    }
}

struct Names;

impl<'de> Visitor<'de> for Names {
    type Value = SharedNetworkApps;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of apps")
    }

    /// Go encodes an empty slice as `null`.
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(SharedNetworkApps::default())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut names = Vec::new();
        while let Some(app) = seq.next_element::<App>()? {
            if app.on_shared_network() {
                names.push(app.name);
            }
        }
        Ok(SharedNetworkApps(names))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_shared_network_names_are_kept() {
        let body = r#"{"total_apps": 3, "apps": [
            {"name": "a", "network": "default"}, {"name": "b", "network": "b-net"},
            {"name": "c"}]}"#;
        let got: AppsEnvelope = serde_json::from_str(body).unwrap();
        assert_eq!(got.apps.0, ["a", "c"]);
        let none: AppsEnvelope = serde_json::from_str(r#"{"apps": null}"#).unwrap();
        assert!(none.apps.0.is_empty());
    }
}
