//! One app's secrets: values by name, the version every change bumps, and the values each
//! machine booted with (the HTTP side is `secrets.rs`).

use std::collections::BTreeMap;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::ids::SimClock;

#[derive(Debug, Clone)]
pub(crate) struct Secret {
    pub value: String,
    created: Instant,
    updated: Instant,
}

/// One app's secrets, their version, and what each machine booted with.
#[derive(Debug, Default)]
pub(crate) struct Secrets {
    pub values: BTreeMap<String, Secret>,
    pub version: u64,
    booted: BTreeMap<String, BTreeMap<String, String>>,
}

/// A digest that identifies a value without revealing it (FNV-1a, 64 bits, hex).
pub(crate) fn digest(value: &str) -> String {
    let h = value.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{h:016x}")
}

/// Fly's rule for a secret name: an environment variable name.
pub(crate) fn valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl Secrets {
    pub fn json(&self, clock: &SimClock, name: &str, s: &Secret) -> Value {
        json!({"name": name, "digest": digest(&s.value),
               "created_at": clock.rfc3339(s.created), "updated_at": clock.rfc3339(s.updated)})
    }

    pub fn set(&mut self, name: &str, value: &str, now: Instant) {
        let created = self.values.get(name).map_or(now, |s| s.created);
        self.values
            .insert(name.to_owned(), Secret { value: value.to_owned(), created, updated: now });
    }

    /// The values a machine booting now gets, recorded for it.
    pub(crate) fn boot(&mut self, machine: &str) {
        let env = self.values.iter().map(|(k, s)| (k.clone(), s.value.clone())).collect();
        self.booted.insert(machine.to_owned(), env);
    }

    /// The secret environment `machine` booted with.
    pub(crate) fn booted(&self, machine: &str) -> BTreeMap<String, String> {
        self.booted.get(machine).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_digests() {
        assert!(valid_name("GIT_TOKEN") && valid_name("_x1"));
        assert!(!valid_name("1A") && !valid_name("A-B") && !valid_name(""));
        assert_eq!(digest("a"), digest("a"));
        assert_ne!(digest("a"), digest("b"));
        assert!(!digest("hunter2").contains("hunter2"));
    }
}
