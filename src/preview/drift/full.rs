//! The full verification: complete snapshots of Fly and the database, then drift and orphans.
//!
//! # Guarantees
//! Memory is a small tuple per machine and per row (`Sighting`, [`DriftRow`]), never whole
//! rows or machine configs. Only machines whose state differs from what their row recorded are
//! sent to [`crate::store::Store::mark_due`] (it would leave the others alone anyway), so a
//! fleet at rest costs one read of the rows and no write.

use std::collections::{HashMap, HashSet};

use super::{Drift, DriftError, Sighting, seen};
use crate::store::{DriftRow, Seen};

impl Drift {
    /// Full verification: Fly's apps and machines, the rows; requeues what drifted, sweeps
    /// orphans (our apps that no row names and that hold a machine of ours).
    pub(super) async fn full(&mut self) -> Result<(), DriftError> {
        let prefix = self.prefix();
        // Rows first: a machine created after the listing of a row read as running after it
        // would look gone (a 100k fleet still converging requeued thousands of healthy rows).
        // Read before, a running row's machine existed before the listing began.
        let rows = self.ctx.store.drift_rows().await?;
        let apps = self.our_apps().await?;
        let machines = self.machines(None).await?;
        self.advance(&machines);
        let mut by_app: HashMap<&str, Vec<&Sighting>> = HashMap::new();
        machines
            .iter()
            .filter(|m| m.app.starts_with(&prefix) && m.ours)
            .for_each(|m| by_app.entry(m.app.as_str()).or_default().push(m));
        self.requeue(&drifted(&rows, &apps, &by_app)).await?;
        let known: HashSet<&str> = rows.iter().map(|r| r.fly_app_name.as_str()).collect();
        let orphans: Vec<String> = apps
            .iter()
            .filter(|a| !known.contains(a.as_str()) && by_app.contains_key(a.as_str()))
            .cloned()
            .collect();
        self.sweep(orphans).await;
        self.metrics.resyncs.with_label_values(&["periodic"]).inc();
        Ok(())
    }
}

/// Running rows whose app, or the machine they recorded, is gone; and our machines of a row
/// (the one it recorded, or any if it recorded none) in a state other than the recorded one.
fn drifted(
    rows: &[DriftRow],
    apps: &HashSet<String>,
    by_app: &HashMap<&str, Vec<&Sighting>>,
) -> Vec<Seen> {
    let mut out = Vec::new();
    for r in rows {
        let ms = by_app.get(r.fly_app_name.as_str()).map_or(&[][..], Vec::as_slice);
        let recorded = |m: &Sighting| r.fly_machine_id.as_ref().is_none_or(|id| *id == m.id);
        if r.running && (!apps.contains(&r.fly_app_name) || !ms.iter().any(|m| recorded(m))) {
            out.push(Seen { app: r.fly_app_name.clone(), machine: None });
        }
        let changed = |m: &&&Sighting| recorded(m) && r.machine_state.as_ref() != Some(&m.state);
        out.extend(ms.iter().filter(changed).map(|m| seen(m)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MachineState;

    fn row(
        app: &str,
        machine: Option<&str>,
        state: Option<MachineState>,
        running: bool,
    ) -> DriftRow {
        DriftRow {
            fly_app_name: app.into(),
            fly_machine_id: machine.map(Into::into),
            machine_state: state,
            running,
        }
    }

    fn sighting(app: &str, id: &str, state: MachineState) -> Sighting {
        Sighting { app: app.into(), id: id.into(), state, ours: true, updated_at: None }
    }

    #[test]
    fn only_what_differs_from_the_rows_is_sent() {
        let ms = [
            sighting("a", "m1", MachineState::Started),
            sighting("b", "m2", MachineState::Suspended),
            sighting("c", "m3", MachineState::Started),
            sighting("d", "other", MachineState::Stopped),
        ];
        let mut by_app: HashMap<&str, Vec<&Sighting>> = HashMap::new();
        ms.iter().for_each(|m| by_app.entry(m.app.as_str()).or_default().push(m));
        let apps: HashSet<String> = ["a", "b", "c", "d"].map(String::from).into();
        let rows = [
            // Unchanged: nothing sent.
            row("a", Some("m1"), Some(MachineState::Started), true),
            // Autostopped: sent (the store decides it does not matter).
            row("b", Some("m2"), Some(MachineState::Started), true),
            // Its app is gone.
            row("gone", Some("m9"), Some(MachineState::Started), true),
            // Recorded another machine, which is gone; the one seen is not its own.
            row("d", Some("m4"), Some(MachineState::Started), true),
            // Stopped rows are only compared machine by machine.
            row("c", None, None, false),
        ];
        let out = drifted(&rows, &apps, &by_app);
        let got: Vec<(String, Option<String>)> =
            out.iter().map(|s| (s.app.clone(), s.machine.as_ref().map(|m| m.0.clone()))).collect();
        assert_eq!(
            got,
            vec![
                ("b".into(), Some("m2".into())),
                ("gone".into(), None),
                ("d".into(), None),
                ("c".into(), Some("m3".into())),
            ]
        );
    }
}
