//! A Fly machine's `state`, typed: the states Fly documents, and the verbatim text of any
//! other (Fly adds states; the wait endpoint's `settled`). Parsing never fails and the text
//! round-trips, so the row's `machine_state` column and Fly's JSON keep what Fly said.

use std::convert::Infallible;
use std::fmt;
use std::str::FromStr;

use sqlx::Postgres;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};

/// Defines the known states: the enum (plus `Other`), `KNOWN` and the text of each.
macro_rules! machine_states {
    ($($(#[$vm:meta])* $variant:ident = $text:literal),+ $(,)?) => {
        /// A machine state as Fly reports it (`GET /machines/{id}`, the org listing, `/wait`).
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum MachineState {
            $($(#[$vm])* $variant,)+
            /// A state not listed here, kept verbatim (never the text of a listed one).
            Other(UnlistedState),
        }

        impl MachineState {
            /// Every listed state, in declaration order.
            pub const KNOWN: &'static [MachineState] = &[$(MachineState::$variant),+];

            /// The text Fly uses.
            pub fn as_str(&self) -> &str {
                match self {
                    $(MachineState::$variant => $text,)+
                    MachineState::Other(o) => &o.0,
                }
            }

            fn listed(text: &str) -> Option<MachineState> {
                match text {
                    $($text => Some(MachineState::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

machine_states! {
    /// Transient: the machine is being created.
    Creating = "creating",
    /// Created but never started (`skip_launch`, or just after create).
    Created = "created",
    Starting = "starting",
    Started = "started",
    Stopping = "stopping",
    Stopped = "stopped",
    Restarting = "restarting",
    Suspending = "suspending",
    /// Suspended to memory snapshot; resumes on the next start.
    Suspended = "suspended",
    Updating = "updating",
    Replacing = "replacing",
    Destroying = "destroying",
    /// Terminal; a GET shortly after answers 404.
    Destroyed = "destroyed",
    /// Stopped by an error (boot failure, exhausted restarts); can be started again.
    Failed = "failed",
    /// Could not launch at all; Fly cleans it up to `destroyed`.
    LaunchFailed = "launch_failed",
    /// Version-only terminal: a newer version replaced this one.
    Replaced = "replaced",
    /// Version-only terminal: moved to another host.
    Migrated = "migrated",
}

/// The text of a state [`MachineState`] does not list.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UnlistedState(String);

impl UnlistedState {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl MachineState {
    /// Neither `destroying` nor `destroyed` (what fly-go's `ListActive` keeps).
    pub fn is_active(&self) -> bool {
        !matches!(self, MachineState::Destroying | MachineState::Destroyed)
    }
}

impl Default for MachineState {
    /// The state of a machine whose JSON had none: the empty text.
    fn default() -> Self {
        MachineState::Other(UnlistedState(String::new()))
    }
}

impl From<&str> for MachineState {
    fn from(text: &str) -> Self {
        Self::listed(text).unwrap_or_else(|| MachineState::Other(UnlistedState(text.to_owned())))
    }
}

impl From<String> for MachineState {
    fn from(text: String) -> Self {
        Self::listed(&text).unwrap_or(MachineState::Other(UnlistedState(text)))
    }
}

impl FromStr for MachineState {
    type Err = Infallible;
    fn from_str(s: &str) -> Result<Self, Infallible> {
        Ok(s.into())
    }
}

impl fmt::Display for MachineState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for MachineState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for MachineState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(String::deserialize(d)?.into())
    }
}

impl sqlx::Type<Postgres> for MachineState {
    fn type_info() -> PgTypeInfo {
        <&str as sqlx::Type<Postgres>>::type_info()
    }
    fn compatible(ty: &PgTypeInfo) -> bool {
        <&str as sqlx::Type<Postgres>>::compatible(ty)
    }
}

impl sqlx::Encode<'_, Postgres> for MachineState {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <&str as sqlx::Encode<Postgres>>::encode_by_ref(&self.as_str(), buf)
    }
}

impl<'r> sqlx::Decode<'r, Postgres> for MachineState {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(<&str as sqlx::Decode<Postgres>>::decode(value)?.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_states_round_trip() {
        for s in MachineState::KNOWN {
            assert_eq!(MachineState::from(s.as_str()), *s);
            assert_eq!(MachineState::from(s.to_string()), *s);
            assert!(!matches!(s, MachineState::Other(_)));
        }
        assert_eq!(MachineState::from("started"), MachineState::Started);
        assert_eq!(MachineState::from("launch_failed"), MachineState::LaunchFailed);
    }

    #[test]
    fn unlisted_states_are_kept_verbatim() {
        let s: MachineState = "hibernating".parse().unwrap_or_default();
        assert!(matches!(&s, MachineState::Other(o) if o.as_str() == "hibernating"));
        assert_eq!(s.to_string(), "hibernating");
        assert_eq!(MachineState::from(String::from("hibernating")), s);
        assert_eq!(MachineState::default().as_str(), "");
        assert_ne!(MachineState::from("Started"), MachineState::Started, "Fly's text is lowercase");
    }

    #[test]
    fn json_is_the_text() {
        let s: MachineState = serde_json::from_str("\"suspended\"").unwrap();
        assert_eq!(s, MachineState::Suspended);
        assert_eq!(serde_json::to_string(&MachineState::from("x")).unwrap(), "\"x\"");
    }

    #[test]
    fn active_means_not_being_destroyed() {
        assert!(MachineState::Stopped.is_active());
        assert!(MachineState::from("new-state").is_active());
        assert!(!MachineState::Destroying.is_active());
        assert!(!MachineState::Destroyed.is_active());
    }
}
