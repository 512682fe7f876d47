//! The row's typed states: the one list of `status`, `desired_state` and `status_reason`
//! values. Metrics, the statistics query and the migrations' CHECK constraints all read them
//! from here (a test proves the enum and the constraint agree). Stored as text.

use std::fmt;
use std::str::FromStr;

use sqlx::Postgres;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};

/// Defines a text-backed enum: `ALL`, `as_str`, `Display`, `FromStr` and the sqlx traits.
macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vm])* $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored text.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, UnknownValue> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownValue { what: stringify!($name), value: s.chars().take(64).collect() }),
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl sqlx::Type<Postgres> for $name {
            fn type_info() -> PgTypeInfo {
                <&str as sqlx::Type<Postgres>>::type_info()
            }
            fn compatible(ty: &PgTypeInfo) -> bool {
                <&str as sqlx::Type<Postgres>>::compatible(ty)
            }
        }

        impl sqlx::postgres::PgHasArrayType for $name {
            fn array_type_info() -> PgTypeInfo {
                <&str as sqlx::postgres::PgHasArrayType>::array_type_info()
            }
            fn array_compatible(ty: &PgTypeInfo) -> bool {
                <&str as sqlx::postgres::PgHasArrayType>::array_compatible(ty)
            }
        }

        impl sqlx::Encode<'_, Postgres> for $name {
            fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
                <&str as sqlx::Encode<Postgres>>::encode_by_ref(&self.as_str(), buf)
            }
        }

        impl<'r> sqlx::Decode<'r, Postgres> for $name {
            fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
                let text = <&str as sqlx::Decode<Postgres>>::decode(value)?;
                Ok(text.parse()?)
            }
        }
    };
}

/// A stored value that is not one of the enum's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} value {value:?}")]
pub struct UnknownValue {
    what: &'static str,
    value: String,
}

text_enum! {
    /// `status`: what the web app shows (README.md, "Status semantics").
    Status {
        /// Waiting for the controller's first pass (or a redeploy request).
        Pending = "pending",
        /// A deploy is in progress.
        Initializing = "initializing",
        /// The preview answers at its URL (or is suspended/idle, ready to wake).
        Running = "running",
        /// Torn down on request; nothing runs on Fly.
        Stopped = "stopped",
        /// Failed; `error_message` says why and what to do.
        Error = "error",
    }
}

text_enum! {
    /// `desired_state`: what the row asks for.
    DesiredState {
        Running = "running",
        Stopped = "stopped",
    }
}

text_enum! {
    /// `status_reason`: the machine-readable why behind `status`.
    Reason {
        Ready = "Ready",
        Idle = "Idle",
        Stopped = "Stopped",
        TearingDown = "TearingDown",
        Deploying = "Deploying",
        WaitingForMachine = "WaitingForMachine",
        WaitingForHealthCheck = "WaitingForHealthCheck",
        WaitingForFly = "WaitingForFly",
        InvalidSpec = "InvalidSpec",
        NameOwnedElsewhere = "NameOwnedElsewhere",
        MachineExited = "MachineExited",
        HealthDeadlineExceeded = "HealthDeadlineExceeded",
        /// Fly refused the machine or app configuration (HTTP 422 and other 4xx).
        ConfigRejected = "ConfigRejected",
        FlyApiError = "FlyApiError",
        /// Fly is failing platform-wide; the row keeps its status and is retried when Fly heals.
        FlyUnavailable = "FlyUnavailable",
        DatabaseError = "DatabaseError",
        Fenced = "Fenced",
        /// Sync on save: the runner answered that the fetch (or reset / install) failed, or
        /// the runner could not be asked. The preview keeps running the previous commit.
        SyncFailed = "SyncFailed",
        /// Sync on save: no answer within the exec / runner timeout.
        SyncTimedOut = "SyncTimedOut",
        /// Sync on save: the fetch succeeded but the branch does not have `revision` (yet).
        SyncCommitNotFound = "SyncCommitNotFound",
        /// Sync on save: `revision` changed dependencies and is being installed beside the
        /// running dev server; `served_revision` follows when it serves.
        SyncInstalling = "SyncInstalling",
        /// The user already has `MAX_PREVIEWS_PER_USER` previews wanting to run.
        QuotaExceeded = "QuotaExceeded",
        /// The row used its redeploy budget; the latest request waits for the window to end.
        RedeployThrottled = "RedeployThrottled",
    }
}

impl Reason {
    /// The reasons the sync lane sets; a confirmed sync replaces them with `Ready`.
    pub const SYNC: &'static [Reason] = &[
        Reason::SyncFailed,
        Reason::SyncTimedOut,
        Reason::SyncCommitNotFound,
        Reason::SyncInstalling,
    ];
}

impl Status {
    /// The SQL list `('pending', 'initializing', …)` for a CHECK constraint.
    pub fn sql_list() -> String {
        let quoted: Vec<String> = Self::ALL.iter().map(|s| format!("'{s}'")).collect();
        format!("({})", quoted.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_value() {
        for s in Status::ALL {
            assert_eq!(s.as_str().parse::<Status>(), Ok(*s));
        }
        for d in DesiredState::ALL {
            assert_eq!(d.as_str().parse::<DesiredState>(), Ok(*d));
        }
        for r in Reason::ALL {
            assert_eq!(r.as_str().parse::<Reason>(), Ok(*r));
        }
    }

    #[test]
    fn unknown_values_are_refused_and_clipped() {
        let e = "x".repeat(500).parse::<Status>().unwrap_err();
        assert!(e.to_string().len() < 120, "{e}");
        assert!("Running".parse::<Status>().is_err(), "status text is lowercase");
    }

    #[test]
    fn sql_list_matches_the_values() {
        assert_eq!(
            Status::sql_list(),
            "('pending', 'initializing', 'running', 'stopped', 'error')"
        );
    }
}
