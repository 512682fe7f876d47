//! Leadership for the drift checks and the orphan sweep: a session-level advisory lock held on
//! a dedicated connection ([`LeaderConn`]). A follower waits blocked in `pg_advisory_lock` (no
//! statement while it waits); Postgres hands the lock to it the moment the leader's session
//! ends, so a killed leader is replaced in about the time its backend takes to notice.
//!
//! # Guarantees
//! - A leader killed outright (process or host gone with its TCP connection reset) is replaced
//!   at once; one whose packets stop (partition, frozen host) when the server's TCP keepalives
//!   end its backend: at most about 11 s (`leader_session.sql`: 5 s idle, then 3 probes 2 s
//!   apart; 10 s for data left unacknowledged; measured 8.4–9.1 s by
//!   `crates/bench/scripts/partition-leader.sh`). Neither waits for `LEADER_TTL`.
//! - At rest a leader sends one statement every `Settings::leader_renew` (the check, which also
//!   renews the leader row); a follower sends none while it waits, and one per
//!   `Settings::leader_rearm` when it reconnects to wait again.
//! - A replica whose gate is shut never waits for the lock, and a leader whose gate shuts steps
//!   down within a quarter second (row deleted, lock released); shutdown drops the connection,
//!   which releases the lock, and deletes the row.
//! # Caveats
//! - Split brain is bounded, not excluded: a leader cut off from the database learns it lost the
//!   lock only at its next check (up to `leader_renew` plus [`CHECK_TIMEOUT`]), while another
//!   may lead about 11 s after the cut (measured at the 60 s default: both led for ~19 s). In
//!   between both may run drift checks; a cut-off leader cannot read rows, so its orphan sweep
//!   cannot delete anything, and drift repairs are fenced row writes. An older replica electing
//!   by the row alone yields within its own renewal, since the lock holder rewrites the row
//!   unconditionally.
//! - Behind a session pooler, leadership moves when the pooler lets go of the dead client's
//!   server connection (PgBouncer: at once, with `DISCARD ALL`). Transaction poolers are
//!   refused at connect.
//! - Rows never wait for a leader: leadership gates only drift checks and the orphan sweep.

use std::time::Duration;

use tokio::sync::watch;

use crate::ops::metrics::Metrics;
use crate::preview::ctx::Ctx;
use crate::store::{LeaderConn, StoreError};

/// How long a leader's check may take before the connection counts as lost: as long as the
/// pool waits for a connection, so a database slow under load does not make leadership flap.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the (local, statement-free) gate is looked at while waiting or leading.
const GATE_POLL: Duration = Duration::from_millis(250);
/// Reconnect back-off after a failed connection or statement: doubles up to the maximum.
const RETRY: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(30));

/// Why a wait or a reign ended.
enum End {
    GateShut,
    Rearm,
    /// The connection failed before this replica led (back-off grows).
    Lost(String),
    /// The connection failed while it led (back-off starts over).
    Deposed(String),
}

/// Waits for and holds leadership, forever, publishing whether this replica leads on `tx`
/// (and the `fly_preview_leader` gauge).
pub async fn hold(ctx: &Ctx, metrics: &Metrics, tx: watch::Sender<bool>) {
    let mut retry = RETRY.0;
    loop {
        gate_opens(ctx).await;
        // The connection is dropped after each wait or reign: a cancelled wait leaves it
        // unusable, and closing it is what releases a lock this side could not release.
        let end = match connect(ctx, metrics).await {
            Ok(mut conn) => reign(ctx, metrics, &tx, &mut conn).await,
            Err(e) => End::Lost(e.to_string()),
        };
        match end {
            End::Lost(e) => {
                tracing::warn!(error = %e, retry_in = ?retry, "leadership connection lost");
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(RETRY.1);
            }
            End::Deposed(_) => {
                tokio::time::sleep(RETRY.0).await;
                retry = RETRY.0 * 2;
            }
            End::GateShut | End::Rearm => retry = RETRY.0,
        }
    }
}

async fn connect(ctx: &Ctx, metrics: &Metrics) -> Result<LeaderConn, StoreError> {
    metrics.leader_statements.inc();
    LeaderConn::connect(ctx.store.pool(), ctx.store.owner()).await
}

/// Waits for the lock, then leads until the gate shuts or the connection fails the check.
async fn reign(ctx: &Ctx, m: &Metrics, tx: &watch::Sender<bool>, c: &mut LeaderConn) -> End {
    m.leader_statements.inc();
    tokio::select! {
        r = c.lock() => if let Err(e) = r { return End::Lost(e.to_string()) },
        () = gate_shuts(ctx) => return End::GateShut,
        () = tokio::time::sleep(ctx.settings.leader_rearm()) => return End::Rearm,
    }
    tracing::info!("leading: drift checks and the orphan sweep run here");
    publish(m, tx, true);
    let end = lead(ctx, m, c).await;
    publish(m, tx, false);
    match &end {
        End::GateShut => step_down(m, c).await,
        End::Deposed(e) => tracing::warn!(error = %e, "no longer leading: the check failed"),
        End::Lost(_) | End::Rearm => {}
    }
    end
}

/// Checks the connection every `leader_renew` (the first at once: the row names us).
async fn lead(ctx: &Ctx, m: &Metrics, c: &mut LeaderConn) -> End {
    let mut tick = tokio::time::interval(ctx.settings.leader_renew());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = gate_shuts(ctx) => return End::GateShut,
        }
        m.leader_statements.inc();
        match tokio::time::timeout(CHECK_TIMEOUT, c.note(ctx.settings.leader_ttl)).await {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => return End::Deposed("the session no longer holds the lock".into()),
            Ok(Err(e)) => return End::Deposed(e.to_string()),
            Err(_) => return End::Deposed(format!("no answer within {CHECK_TIMEOUT:?}")),
        }
    }
}

/// A blocked replica gives leadership up, so a healthy one leads (dropping the connection
/// afterwards releases the lock even if this fails; the row then merely expires).
async fn step_down(m: &Metrics, c: &mut LeaderConn) {
    tracing::warn!("stepping down as leader while the controller is blocked");
    m.leader_statements.inc();
    let failed = match tokio::time::timeout(CHECK_TIMEOUT, c.unlock()).await {
        Ok(Ok(())) => return,
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {CHECK_TIMEOUT:?}"),
    };
    tracing::warn!(error = %failed, "resigning leadership failed; dropping its connection");
}

fn publish(m: &Metrics, tx: &watch::Sender<bool>, leader: bool) {
    m.leader.set(i64::from(leader));
    tx.send_if_modified(|v| std::mem::replace(v, leader) != leader);
}

async fn gate_opens(ctx: &Ctx) {
    while !ctx.gate.open() {
        tokio::time::sleep(GATE_POLL).await;
    }
}

async fn gate_shuts(ctx: &Ctx) {
    while ctx.gate.open() {
        tokio::time::sleep(GATE_POLL).await;
    }
}
