//! Reading the Fly side of one preview: the full picture (app, IPs, machines) or the cheap
//! one (just the machine the row already knows about).

use uuid::Uuid;

use crate::fly::{FlyClient, FlyError};
use crate::preview::plan::{AppSeen, MachineSeen, Observed};

/// Full observation: app, IP assignments, active machines. 1 call if the app is missing,
/// else 3.
pub async fn full(fly: &FlyClient, app: &str, preview_id: Uuid) -> Result<Observed, FlyError> {
    match fly.get_app(app).await {
        Ok(_) => {}
        Err(FlyError::NotFound(_)) => return Ok(Observed::missing()),
        Err(FlyError::Forbidden(_)) => {
            return Ok(Observed { app: AppSeen::Foreign, ..Observed::missing() });
        }
        Err(e) => return Err(e),
    }
    let ips = fly.list_ips(app).await?;
    let machines = fly.list_machines(app, &[]).await?;
    Ok(Observed {
        app: AppSeen::Ours,
        has_v6: ips.iter().any(|ip| ip.is_v6()),
        has_shared_v4: ips.iter().any(|ip| ip.is_shared_v4()),
        machines: machines
            .iter()
            .filter(|m| m.is_active())
            .map(|m| MachineSeen::from_machine(m, preview_id))
            .collect(),
    })
}

/// Cheap observation for a row that is initializing a machine it already knows: one GET.
/// `None` when the machine is gone or not ours any more (then observe fully).
pub async fn fast(
    fly: &FlyClient,
    app: &str,
    machine_id: &str,
    preview_id: Uuid,
) -> Result<Option<Observed>, FlyError> {
    let m = match fly.get_machine(app, machine_id).await {
        Ok(m) => m,
        Err(FlyError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let seen = MachineSeen::from_machine(&m, preview_id);
    if !m.is_active() || !seen.ours {
        return Ok(None);
    }
    Ok(Some(Observed {
        app: AppSeen::Ours,
        has_v6: true,
        has_shared_v4: true,
        machines: vec![seen],
    }))
}
