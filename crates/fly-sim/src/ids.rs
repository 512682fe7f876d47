//! Simulated time (driven by `tokio::time`, so paused-clock tests work) and seeded id generation.

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

/// Maps `tokio::time::Instant`s onto wall-clock timestamps: wall time at start plus elapsed
/// (possibly paused/advanced) tokio time.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SimClock {
    base: Instant,
    wall: DateTime<Utc>,
}

impl SimClock {
    pub(crate) fn start() -> Self {
        // Whole milliseconds, so rendered timestamps (millisecond precision) are exact.
        let now = Utc::now();
        let wall = DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now);
        Self { base: Instant::now(), wall }
    }

    pub(crate) fn wall(&self, at: Instant) -> DateTime<Utc> {
        let elapsed = TimeDelta::from_std(at.saturating_duration_since(self.base))
            .unwrap_or(TimeDelta::zero());
        self.wall + elapsed
    }

    /// Unix milliseconds (event timestamps, app `created_at`).
    pub(crate) fn unix_ms(&self, at: Instant) -> i64 {
        self.wall(at).timestamp_millis()
    }

    /// RFC 3339 with millisecond precision (`created_at`, `updated_at`).
    pub(crate) fn rfc3339(&self, at: Instant) -> String {
        self.wall(at).to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    /// Milliseconds since the simulator started (request log).
    pub(crate) fn rel_ms(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_millis()).unwrap_or(u64::MAX)
    }

    /// Nanoseconds since start: a total order key for cursors.
    pub(crate) fn rel_nanos(&self, at: Instant) -> u128 {
        at.saturating_duration_since(self.base).as_nanos()
    }
}

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const ADJECTIVES: &[&str] = &[
    "aged",
    "ancient",
    "autumn",
    "billowing",
    "bitter",
    "black",
    "blue",
    "bold",
    "broken",
    "cold",
    "cool",
    "crimson",
    "damp",
    "dark",
    "dawn",
    "delicate",
    "divine",
    "dry",
    "empty",
    "falling",
    "floral",
    "fragrant",
    "frosty",
    "green",
    "hidden",
    "holy",
    "icy",
    "late",
    "lingering",
    "little",
];
const NOUNS: &[&str] = &[
    "bird",
    "breeze",
    "brook",
    "bush",
    "butterfly",
    "cherry",
    "cloud",
    "darkness",
    "dawn",
    "dew",
    "dream",
    "dust",
    "field",
    "fire",
    "flower",
    "fog",
    "forest",
    "frog",
    "glade",
    "glitter",
    "grass",
    "haze",
    "hill",
    "lake",
    "leaf",
    "meadow",
    "moon",
    "morning",
    "mountain",
    "night",
    "paper",
    "pine",
    "pond",
    "rain",
    "resonance",
    "river",
    "sea",
    "shadow",
    "shape",
    "silence",
    "sky",
    "smoke",
    "snow",
    "sound",
    "star",
    "sun",
    "sunset",
    "surf",
    "thunder",
    "tree",
];

/// Deterministic id source (seeded): the same seed and request order yield the same ids.
#[derive(Debug)]
pub(crate) struct IdGen {
    rng: StdRng,
}

impl IdGen {
    pub(crate) fn new(seed: u64) -> Self {
        Self { rng: StdRng::seed_from_u64(seed) }
    }

    /// A 26-char ULID: 48-bit millisecond time + 80 random bits, Crockford base32.
    pub(crate) fn ulid(&mut self, unix_ms: i64) -> String {
        let time = u128::from(u64::try_from(unix_ms).unwrap_or(0) & 0xFFFF_FFFF_FFFF);
        let random =
            u128::from(self.rng.random::<u64>()) << 16 | u128::from(self.rng.random::<u16>());
        let value = (time << 80) | random;
        (0..26).rev().map(|i| char::from(CROCKFORD[((value >> (i * 5)) & 0x1F) as usize])).collect()
    }

    pub(crate) fn hex(&mut self, len: usize) -> String {
        (0..len).map(|_| char::from(b"0123456789abcdef"[self.rng.random_range(0..16)])).collect()
    }

    /// 14 lowercase hex characters, like `1857156b526dd8`.
    pub(crate) fn machine_id(&mut self) -> String {
        self.hex(14)
    }

    /// 16 lowercase alphanumerics, like `z4k69dxd8r31p5mx`.
    pub(crate) fn app_id(&mut self) -> String {
        const ALNUM: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
        (0..16).map(|_| char::from(ALNUM[self.rng.random_range(0..ALNUM.len())])).collect()
    }

    /// Generated machine names look like `aged-thunder-7371`.
    pub(crate) fn machine_name(&mut self) -> String {
        let adjective = ADJECTIVES[self.rng.random_range(0..ADJECTIVES.len())];
        let noun = NOUNS[self.rng.random_range(0..NOUNS.len())];
        format!("{adjective}-{noun}-{}", self.rng.random_range(1000..10000))
    }

    pub(crate) fn private_ip(&mut self) -> String {
        let r = &mut self.rng;
        let (a, b, c) = (r.random::<u16>(), r.random::<u16>(), r.random::<u16>());
        format!("fdaa:0:{a:x}:a7b:{b:x}:{c:x}:{:x}:2", r.random::<u16>())
    }

    pub(crate) fn public_v6(&mut self) -> String {
        let (a, b) = (self.rng.random::<u16>(), self.rng.random::<u16>());
        format!("2a09:8280:1::{a:x}:{b:x}")
    }

    pub(crate) fn public_v4(&mut self, shared: bool) -> String {
        let d = self.rng.random_range(1..255u8);
        if shared {
            format!("66.241.125.{d}")
        } else {
            format!("137.66.{}.{d}", self.rng.random_range(0..64u8))
        }
    }

    /// A fresh RNG for a machine (its event ids), derived from this one.
    pub(crate) fn child(&mut self) -> IdGen {
        IdGen::new(self.rng.random())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_fly_shapes_and_are_seeded() {
        let mut a = IdGen::new(7);
        let mut b = IdGen::new(7);
        let ulid = a.ulid(1_700_000_000_000);
        assert_eq!(ulid.len(), 26);
        assert!(ulid.starts_with("01H"), "{ulid}");
        assert_eq!(ulid, b.ulid(1_700_000_000_000));
        let id = a.machine_id();
        assert_eq!(id.len(), 14);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(a.app_id().len(), 16);
        assert_eq!(a.machine_name().split('-').count(), 3);
    }
}
