//! A preview's stop: every machine of its app destroyed, the app kept.
//!
//! # Expected flow
//! One round of three concurrent calls: the app (is it ours, is it on the org's shared
//! network?), its machines, and a forced destroy of the machine the row recorded. Only
//! machines the listing shows besides that one (none, for a preview this controller made) cost
//! a further destroy each.
//!
//! # Guarantees
//! `Stopped` means Fly accepted a forced destroy of every active machine the app had when the
//! stop began (or the app is gone, or is not ours): nothing of the preview runs or is billed
//! beyond an empty app, which costs nothing on Fly. A stop spends none of Fly's org-wide
//! app-delete budget (100 a minute) and a redeploy needs no app create; the app itself goes
//! with the row (its tombstone) or the orphan sweep. An app on the org's shared private
//! network (made before per-app networks) is deleted instead, so the redeploy recreates it on
//! its own network.
//!
//! # Assumptions
//! The row is leased, so no pass of ours creates a machine for it meanwhile. A destroy of a
//! machine already gone answers 404, which is fine; the recorded machine id is one this
//! controller created in this app, so its destroy never touches what is not ours (an app of
//! another org refuses it, and the stop then ends as for an app that is not ours).
//!
//! # Caveats
//! The stop does not wait for Fly to list the machine as `destroyed`: a forced destroy Fly
//! accepted is final. A machine Fly still lists as active afterwards (a stop and an ambiguous
//! create that Fly completed late) is found by the next stop or the drift verification.

use crate::fly::{FlyClient, FlyError, Machine};
use crate::preview::error::ReconcileError;
use crate::preview::idle::delete_app;
use crate::preview::outcome::Outcome;
use crate::store::PreviewRow;

/// Stops the row's preview (see the module's contract).
pub async fn stop(fly: &FlyClient, row: &PreviewRow) -> Result<Outcome, ReconcileError> {
    let app = row.fly_app_name.as_str();
    let known = row.fly_machine_id.as_deref();
    let (found, listed, destroyed) =
        tokio::join!(fly.get_app(app), fly.list_machines(app, &[]), destroy(fly, app, known));
    match found {
        // No app (or not ours to touch: another org's name): nothing of ours runs.
        Err(FlyError::NotFound(_) | FlyError::Forbidden(_)) => return Ok(Outcome::Stopped),
        Err(e) => return Err(e.into()),
        Ok(a) if a.on_shared_network() => return delete_app(fly, app).await,
        Ok(_) => {}
    }
    destroyed?;
    let listed = match listed {
        Ok(ms) => ms,
        Err(FlyError::NotFound(_)) => return Ok(Outcome::Stopped),
        Err(e) => return Err(e.into()),
    };
    for id in others(&listed, known) {
        destroy(fly, app, Some(id)).await?;
    }
    Ok(Outcome::Stopped)
}

/// A forced destroy of `id` (if any); a machine already gone is fine.
async fn destroy(fly: &FlyClient, app: &str, id: Option<&str>) -> Result<(), ReconcileError> {
    let Some(id) = id else { return Ok(()) };
    match fly.destroy_machine(app, id, true).await {
        Ok(()) | Err(FlyError::NotFound(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The listed active machines other than `known` (whose destroy is already on its way).
fn others<'a>(listed: &'a [Machine], known: Option<&str>) -> Vec<&'a str> {
    let other = |m: &&Machine| m.is_active() && Some(m.id.as_str()) != known;
    listed.iter().filter(other).map(|m| m.id.as_str()).collect()
}
