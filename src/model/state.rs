//! The row's typed states: the one list of `status`, `desired_state` and `status_reason`
//! values. Metrics, the statistics query and the migrations' CHECK constraints all read them
//! from here (tests prove the enums agree with the constraints, and `Reason` with every value
//! the triggers write). Stored as text.

use sqlx::Postgres;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};

/// Defines a fieldless enum with fixed texts: `ALL`, `as_str`, `Display` and `FromStr`.
macro_rules! label_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vm])* $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The fixed text.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::model::state::UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::model::state::UnknownValue::new(stringify!($name), s)),
                }
            }
        }
    };
}
pub(crate) use label_enum;

/// A [`label_enum!`] stored as text: also serde's `Serialize` and the sqlx traits.
macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        label_enum! { $(#[$m])* $name { $($(#[$vm])* $variant = $text),+ } }

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

impl UnknownValue {
    /// `value`, clipped to 64 characters, was not one of `what`'s.
    pub fn new(what: &'static str, value: &str) -> Self {
        Self { what, value: value.chars().take(64).collect() }
    }
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
        /// Written by the request triggers: a new row, or a backfilled one, asks for a deploy.
        DeployRequested = "DeployRequested",
        /// Written by the request triggers: `status` was set to 'pending' (deploy again).
        RedeployRequested = "RedeployRequested",
        /// Written by the request triggers: `status` was set to 'stopped' (tear down).
        TeardownRequested = "TeardownRequested",
        /// Written by the update trigger: the repository or branch changed.
        SpecChanged = "SpecChanged",
        /// Written by the variables' trigger: the preview's `fly_preview_env` changed; the
        /// machine boots again with the new variables.
        EnvChanged = "EnvChanged",
        /// The user already has `MAX_PREVIEWS_PER_USER` previews wanting to run.
        QuotaExceeded = "QuotaExceeded",
        /// The row used its redeploy budget; the latest request waits for the window to end.
        RedeployThrottled = "RedeployThrottled",
        /// The runner could not clone the repository at the branch (runner exit 3).
        CloneFailed = "CloneFailed",
        /// Installing the project's dependencies failed or took too long (runner exit 4, 6).
        InstallFailed = "InstallFailed",
        /// The project has no dev or start script to run (runner exit 4, phase `no_script`).
        NoDevScript = "NoDevScript",
        /// The dev server never served at start (runner exit 5).
        DevServerNeverServed = "DevServerNeverServed",
        /// The dev server served, then crashed again and again (runner exit 7).
        DevServerCrashed = "DevServerCrashed",
        /// The kernel killed the dev server for memory.
        OutOfMemory = "OutOfMemory",
        /// Written by the save trigger: a save (`revision`) arrived for a row in error for a
        /// cause a code fix repairs (crash loop, install, no dev script, never served, out of
        /// memory); the controller starts its machine again.
        RestartOnSave = "RestartOnSave",
        /// Nobody opened the preview for `PREVIEW_IDLE_TTL`: its Fly app was deleted (status
        /// `stopped`); writing `opened_at` (or status 'pending') deploys it again.
        Expired = "Expired",
        /// Written by the open trigger: the user opened a running preview; the controller
        /// starts its machine if Fly's autostop suspended or stopped it.
        WakeRequested = "WakeRequested",
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
