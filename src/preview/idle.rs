//! Idle expiry and wake on open, performed: the Fly calls of what
//! [`expiry::step`](crate::preview::expiry::step) decided.
//!
//! # Guarantees
//! Expiry deletes the preview's Fly app (machines, IPs and volumes go with it: nothing is
//! billed while it is expired) and ends `Expired` only once the app is confirmed gone. A wake
//! costs one `GET machine`, plus one `start` and one bounded wait only when autostop had
//! suspended or stopped the machine; a started machine is left alone.
//! # Caveats
//! A machine stopped by a crash (out of memory, a crash-looping dev server) or in any state
//! other than suspended, stopped or started is left to the deploy path, which knows how to
//! repair it; so is a row whose machine is gone.

use crate::fly::{FlyClient, FlyError, WaitOutcome};
use crate::model::MachineState;
use crate::preview::ctx::Ctx;
use crate::preview::error::ReconcileError;
use crate::preview::expiry::{self, Idle};
use crate::preview::outcome::Outcome;
use crate::preview::plan::{MachineRef, MachineSeen, runner_exit};
use crate::store::PreviewRow;

/// The idle part of a pass: `Some(outcome)` ends the pass; `None` lets it go on (deploy).
pub(crate) async fn pass(ctx: &Ctx, row: &PreviewRow) -> Result<Option<Outcome>, ReconcileError> {
    match expiry::step(ctx.settings.idle_ttl, row, chrono::Utc::now()) {
        Idle::Active => Ok(None),
        Idle::StayExpired => Ok(Some(Outcome::Expired)),
        Idle::Expire => expire(ctx, row).await.map(Some),
        Idle::Wake => wake(ctx, row).await,
    }
}

/// Deletes the app; `Expired` once it is gone, else `TearingDown` (the next pass confirms).
async fn expire(ctx: &Ctx, row: &PreviewRow) -> Result<Outcome, ReconcileError> {
    ctx.fly_up()?;
    tracing::info!(ttl = ?ctx.settings.idle_ttl, "unused for its idle TTL: deleting its app");
    match delete_app(&ctx.fly, &row.fly_app_name).await? {
        Outcome::Stopped => Ok(Outcome::Expired),
        other => Ok(other),
    }
}

/// Deletes the app and confirms it is gone (an expiry, a refusal, a stop of an app on the
/// org's shared network): `Stopped`, else `TearingDown` (the next pass confirms).
pub(crate) async fn delete_app(fly: &FlyClient, app: &str) -> Result<Outcome, ReconcileError> {
    match fly.delete_app(app).await {
        Ok(()) => {}
        // Gone already, or not ours to delete (another org's name): nothing of ours remains.
        Err(FlyError::NotFound(_) | FlyError::Forbidden(_)) => return Ok(Outcome::Stopped),
        Err(e) => return Err(e.into()),
    }
    match fly.get_app(app).await {
        Err(FlyError::NotFound(_)) => Ok(Outcome::Stopped),
        Ok(_) => Ok(Outcome::TearingDown),
        Err(e) => Err(e.into()),
    }
}

/// Whether autostop put the machine to sleep (rather than a crash stopping it).
fn asleep(m: &MachineSeen) -> bool {
    let crashed = m.oom_killed || m.exit_code == Some(runner_exit::CRASHLOOP);
    match m.state {
        MachineState::Suspended => true,
        MachineState::Stopped => !crashed,
        _ => false,
    }
}

/// Starts the machine of an opened preview if autostop suspended or stopped it.
async fn wake(ctx: &Ctx, row: &PreviewRow) -> Result<Option<Outcome>, ReconcileError> {
    let Some(id) = row.fly_machine_id.as_deref() else { return Ok(None) };
    ctx.fly_up()?;
    let app = row.fly_app_name.as_str();
    let m = match ctx.fly.get_machine(app, id).await {
        Ok(m) => MachineSeen::from_machine(&m, row.id),
        Err(FlyError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if !m.ours {
        return Ok(None);
    }
    if m.state == MachineState::Started {
        return Ok(Some(Outcome::Running { machine: MachineRef::of(&m) }));
    }
    if !asleep(&m) {
        return Ok(None);
    }
    match ctx.fly.start_machine(app, id).await {
        Ok(()) => {}
        // Fly refuses a start in a state that changed meanwhile: the deploy path looks again.
        Err(FlyError::LeaseConflict(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let wait = ctx.fly.wait_machine(app, id, &MachineState::Started, None, ctx.settings.wait_slice);
    let state = match wait.await? {
        WaitOutcome::Reached { state } => state,
        WaitOutcome::TimedOut => MachineState::Starting,
    };
    let machine = MachineRef { id: id.to_owned(), state };
    Ok(Some(Outcome::Woken { machine, from: m.state }))
}
