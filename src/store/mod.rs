//! The database as the work queue: rows, leases, fenced status writes (with the preview's
//! timeline events, `timeline`), tombstones of deleted rows (`tombstones`), notifications, leadership (an advisory lock on its own connection) and migrations, and the checks made
//! when connecting (`preflight`: no transaction pooler; the role sees and writes every row).
//! Every statement is runtime-checked and exercised by a test in `tests/it/` (`store.rs`,
//! `store_tombstones.rs`, `controller_role.rs`, `supabase_*.rs`).

mod apps;
mod env;
mod fleet;
mod lanes;
mod leader;
mod limits;
mod listen;
pub mod migrate;
mod preflight;
mod queue;
mod sync;
mod timeline;
mod tombstones;

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use uuid::Uuid;

pub use env::EnvVar;
pub use fleet::DriftRow;
pub use leader::{LEADER_KEY, LeaderConn};
pub use limits::Admission;
pub use listen::{ListenEvent, Listener, Notification, Op};
pub use preflight::{
    check_row_access, database_app_prefix, detect_transaction_pooler, privileged_role,
};
pub use queue::{BAD, Lease, MACHINE_ERRORS, QueueStats, Seen, StatusWrite, Written};
pub use sync::SyncTarget;
pub use timeline::EventRow;
pub use tombstones::{Tombstone, Tombstones};

use crate::fly::Secret;
use crate::model::MachineState;
use crate::model::state::{DesiredState, Reason, Status};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Errors at the database boundary. Each message is complete in itself (no `source()`), so
/// a caller printing the chain (`{:#}`) shows the database's message once.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database connection failed: {0}")]
    Connect(String),
    #[error("database error: {}", describe(.0))]
    Query(sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(sqlx::migrate::MigrateError),
    /// `DATABASE_URL` leads to a transaction-mode pooler (Supabase's port 6543, PgBouncer
    /// `pool_mode = transaction`): no LISTEN, no session state, no prepared statements.
    #[error(
        "DATABASE_URL points at a transaction pooler; use the session pooler (port 5432) or a direct connection"
    )]
    TransactionPooler,
    /// The connected role cannot see or write every row the controller needs (RLS, grants).
    #[error("DATABASE_URL {0}")]
    Access(String),
    /// A migration never got its table lock within its lock timeout (the web app kept the
    /// table busy); what it had done was rolled back.
    #[error("{0}")]
    Busy(String),
}

impl From<sqlx::Error> for StoreError {
    /// A prepared statement that collides or vanished is a transaction pooler's doing, whenever
    /// it shows (the connect-time probes are the first line).
    fn from(e: sqlx::Error) -> Self {
        if preflight::is_pooler_symptom(&e) {
            return StoreError::TransactionPooler;
        }
        StoreError::Query(e)
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migrate(e)
    }
}

/// A database error as one line: the server's message and SQLSTATE, else sqlx's text.
fn describe(e: &sqlx::Error) -> String {
    match e.as_database_error() {
        Some(d) => match d.code() {
            Some(code) => format!("{} (SQLSTATE {code})", d.message()),
            None => d.message().to_string(),
        },
        None => e.to_string(),
    }
}

impl StoreError {
    /// A fixed short name for metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::Connect(_) => "db_connect",
            StoreError::Query(_) => "db_query",
            StoreError::Migrate(_) => "db_migrate",
            StoreError::TransactionPooler => "db_transaction_pooler",
            StoreError::Access(_) => "db_access",
            StoreError::Busy(_) => "db_busy",
        }
    }
}

/// One row of `public.fly_preview_apps` as the controller reads it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PreviewRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub project_id: String,
    pub fly_app_name: String,
    pub preview_url: Option<String>,
    pub status: Status,
    pub error_message: Option<String>,
    pub github_repo_url: Option<String>,
    pub github_branch: Option<String>,
    pub desired_state: DesiredState,
    pub generation: i64,
    pub observed_generation: i64,
    pub status_reason: Option<Reason>,
    pub fly_machine_id: Option<String>,
    pub machine_state: Option<MachineState>,
    pub attempts: i32,
    /// `None` means "never by itself": the row waits for a change (permanent errors, converged rows).
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub last_transition_at: DateTime<Utc>,
    pub requested_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Technical detail of the last status (Fly request id, API message); for operators.
    pub status_detail: Option<String>,
    /// Changes applied in the current redeploy window (the redeploy budget).
    pub redeploys: i32,
    pub redeploy_window_start: Option<DateTime<Utc>>,
    /// The last generation counted against the budget.
    pub redeploy_generation: i64,
    /// A Fly app may exist for this row (set before the first call that can create one);
    /// false: it never had one, so stopping or deleting it needs no Fly call.
    pub fly_app_created: bool,
    /// The app's folder inside the repository (`None`: the root); validated before use.
    pub root_directory: Option<String>,
    /// When the user last opened the project (the web app writes it): idle expiry and wake.
    pub opened_at: Option<DateTime<Utc>>,
}

/// Marks the statement as the controller's own write, so the request-translation trigger
/// leaves it alone (the setting is transaction-local and evaluated once, before any row).
const BY_CONTROLLER: &str =
    "(SELECT pg_catalog.set_config('fly_preview.controller', 'on', true)) IS NOT NULL";

/// Fills a named query's placeholders: `{row_cols}` (the column list every read uses; uuid
/// project ids are read in canonical text form) and `{by_controller}`.
pub(crate) fn expand(text: &str) -> String {
    text.replace("{row_cols}", include_str!("sql/row_cols.sql").trim_end())
        .replace("{by_controller}", BY_CONTROLLER)
}

/// The text of the named query `src/store/sql/<name>.sql`, expanded once; counts one
/// statement of that name (`fly_preview_db_statements_total`): use it where it is sent.
macro_rules! named_query {
    ($name:literal) => {{
        $crate::ops::db_statements::count($name);
        static TEXT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            $crate::store::expand(include_str!(concat!("sql/", $name, ".sql")))
        });
        TEXT.as_str()
    }};
}
pub(crate) use named_query;

/// Handle to the database, scoped to one controller replica (the lease owner).
#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
    owner: String,
}

/// Connects a small pool (at least two connections) and refuses a transaction-mode pooler
/// before any other statement. The URL (it may hold a password) never appears in errors.
pub async fn connect(url: &Secret, max_connections: u32) -> Result<PgPool, StoreError> {
    let opts: PgConnectOptions = url
        .expose()
        .parse()
        .map_err(|_| StoreError::Connect("DATABASE_URL could not be parsed".into()))?;
    let opts = opts.application_name("fly-preview-controller");
    let pool = PgPoolOptions::new()
        .max_connections(max_connections.max(2))
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(opts)
        .await
        .map_err(|e| StoreError::Connect(redact(&e.to_string(), url)))?;
    match detect_transaction_pooler(&pool).await {
        Ok(()) => Ok(pool),
        Err(StoreError::Query(e)) => Err(StoreError::Connect(redact(&describe(&e), url))),
        Err(e) => Err(e),
    }
}

/// Removes any trace of the secret from a message.
pub fn redact(message: &str, secret: &Secret) -> String {
    let s = secret.expose();
    if s.is_empty() { message.to_string() } else { message.replace(s, "***") }
}

impl Store {
    pub fn new(pool: PgPool, owner: impl Into<String>) -> Self {
        Self { pool, owner: owner.into() }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// One row by id.
    pub async fn get(&self, id: Uuid) -> Result<Option<PreviewRow>, StoreError> {
        let sql = named_query!("get");
        Ok(sqlx::query_as::<_, PreviewRow>(sql).bind(id).fetch_optional(&self.pool).await?)
    }

    /// Every row, oldest first (status command, sweeps).
    pub async fn list_all(&self) -> Result<Vec<PreviewRow>, StoreError> {
        let sql = named_query!("list_all");
        Ok(sqlx::query_as::<_, PreviewRow>(sql).fetch_all(&self.pool).await?)
    }

    /// Every app name that has a row (the orphan sweep's view of "ours").
    pub async fn app_names(&self) -> Result<Vec<String>, StoreError> {
        crate::ops::db_statements::count("app_names");
        let sql = "SELECT fly_app_name FROM public.fly_preview_apps";
        Ok(sqlx::query_scalar::<_, String>(sql).fetch_all(&self.pool).await?)
    }

    /// Whether a row currently owns this app name.
    pub async fn app_name_exists(&self, name: &str) -> Result<bool, StoreError> {
        crate::ops::db_statements::count("app_name_exists");
        let sql = "SELECT EXISTS (SELECT 1 FROM public.fly_preview_apps WHERE fly_app_name = $1)";
        Ok(sqlx::query_scalar::<_, bool>(sql).bind(name).fetch_one(&self.pool).await?)
    }
}
