//! What every part of the preview domain shares: the Fly client, the store, the settings and
//! the gate.

use std::sync::Arc;

use crate::fly::{FlyClient, FlyError};
use crate::preview::error::ReconcileError;
use crate::preview::gate::FlyGate;
use crate::preview::settings::Settings;
use crate::store::Store;

/// Shared, immutable context of every pass and loop of one replica.
pub struct Ctx {
    pub fly: FlyClient,
    pub store: Store,
    pub settings: Arc<Settings>,
    /// Fly's health and the controller's configuration: what may run now.
    pub gate: Arc<FlyGate>,
}

impl Ctx {
    /// Fails fast, before any write, while Fly is failing platform-wide (the breaker is
    /// open): every call would be refused unsent anyway.
    pub fn fly_up(&self) -> Result<(), ReconcileError> {
        if self.fly.breaker().is_open() { Err(FlyError::unavailable().into()) } else { Ok(()) }
    }
}
