//! What a full verification has seen of our machines so far, and each row compared with it.
//!
//! # Guarantees
//! One small entry per app of ours holding machines: the app's name, and each machine's id and
//! latest state (no config, no row). A later sighting of a machine replaces an earlier one.

use std::collections::HashMap;

use super::Sighting;
use crate::model::MachineState;
use crate::store::{DriftRow, Seen};

/// Our machines of one app, and whether a row names the app.
#[derive(Debug)]
struct Entry {
    machines: Vec<(Box<str>, MachineState)>,
    named: bool,
}

#[derive(Debug, Default)]
pub(super) struct Index {
    apps: HashMap<Box<str>, Entry>,
}

impl Index {
    /// Records one of our machines as seen (its latest state wins).
    pub fn record(&mut self, m: &Sighting) {
        // An app has one machine of ours but for a moment: hold exactly one (a `Vec`'s first
        // push would make room for four).
        let new = || Entry { machines: Vec::with_capacity(1), named: false };
        let entry = match self.apps.get_mut(m.app.as_str()) {
            Some(e) => e,
            None => self.apps.entry(m.app.as_str().into()).or_insert_with(new),
        };
        match entry.machines.iter_mut().find(|(id, _)| **id == *m.id) {
            Some(slot) => slot.1 = m.state.clone(),
            None => entry.machines.push((m.id.as_str().into(), m.state.clone())),
        }
    }

    /// Compares one row with what was seen, appending to `out` what `mark_due` should look
    /// at: a settled running row whose recorded machine (any of ours, if it recorded none)
    /// was not seen; and, on a settled row, our machines of its app (the recorded one, or any)
    /// in a state other than the recorded one. Marks the row's app as named either way.
    pub fn compare(&mut self, r: &DriftRow, out: &mut Vec<Seen>) {
        let entry = self.apps.get_mut(r.fly_app_name.as_str());
        let ms: &[(Box<str>, MachineState)] = match entry {
            Some(e) => {
                e.named = true;
                &e.machines
            }
            None => &[],
        };
        if !r.settled {
            return;
        }
        let recorded = |id: &str| r.fly_machine_id.as_deref().is_none_or(|own| own == id);
        if r.running && !ms.iter().any(|(id, _)| recorded(id)) {
            out.push(Seen { app: r.fly_app_name.clone(), machine: None });
        }
        let changed = ms
            .iter()
            .filter(|(id, state)| recorded(id) && r.machine_state.as_ref() != Some(state))
            .map(|(id, state)| Seen {
                app: r.fly_app_name.clone(),
                machine: Some((id.to_string(), state.clone())),
            });
        out.extend(changed);
    }

    /// Apps no compared row named that hold a live machine of ours (not destroyed or being
    /// destroyed: the app itself exists).
    pub fn orphans(&self) -> Vec<String> {
        let live =
            |s: &MachineState| !matches!(s, MachineState::Destroyed | MachineState::Destroying);
        self.apps
            .iter()
            .filter(|(_, e)| !e.named && e.machines.iter().any(|(_, s)| live(s)))
            .map(|(app, _)| app.to_string())
            .collect()
    }

    /// Apps recorded (for tests and logs).
    pub fn len(&self) -> usize {
        self.apps.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use MachineState::{Destroyed, Started, Stopped, Suspended};

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
            settled: true,
        }
    }

    fn sighting(app: &str, id: &str, state: MachineState) -> Sighting {
        Sighting { app: app.into(), id: id.into(), state, ours: true, updated_at: None }
    }

    fn index(ms: &[Sighting]) -> Index {
        let mut ix = Index::default();
        ms.iter().for_each(|m| ix.record(m));
        ix
    }

    fn sent(out: &[Seen]) -> Vec<(String, Option<String>)> {
        out.iter().map(|s| (s.app.clone(), s.machine.as_ref().map(|m| m.0.clone()))).collect()
    }

    #[test]
    fn only_what_differs_from_the_rows_is_sent() {
        let mut ix = index(&[
            sighting("a", "m1", Started),
            sighting("b", "m2", Suspended),
            sighting("c", "m3", Started),
            sighting("d", "other", Stopped),
        ]);
        let rows = [
            // Unchanged: nothing sent.
            row("a", Some("m1"), Some(Started), true),
            // Autostopped: sent (the store decides it does not matter).
            row("b", Some("m2"), Some(Started), true),
            // Its app and machine were not seen.
            row("gone", Some("m9"), Some(Started), true),
            // Recorded another machine, which is gone; the one seen is not its own.
            row("d", Some("m4"), Some(Started), true),
            // Stopped rows are only compared machine by machine.
            row("c", None, None, false),
        ];
        let mut out = Vec::new();
        rows.iter().for_each(|r| ix.compare(r, &mut out));
        let want: Vec<(String, Option<String>)> = vec![
            ("b".into(), Some("m2".into())),
            ("gone".into(), None),
            ("d".into(), None),
            ("c".into(), Some("m3".into())),
        ];
        assert_eq!(sent(&out), want);
        assert!(ix.orphans().is_empty(), "every app is named");
    }

    #[test]
    fn the_latest_sighting_wins() {
        let mut ix = index(&[sighting("a", "m1", Started), sighting("a", "m1", Suspended)]);
        let mut out = Vec::new();
        ix.compare(&row("a", Some("m1"), Some(Suspended), true), &mut out);
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(ix.len(), 1);
    }

    #[test]
    fn a_row_changed_during_the_walk_is_left_to_the_next_but_names_its_app() {
        let mut ix = index(&[sighting("a", "m2", Started)]);
        let mut out = Vec::new();
        let mut r = row("a", Some("m1"), Some(Started), true);
        r.settled = false;
        ix.compare(&r, &mut out);
        assert!(out.is_empty(), "{out:?}");
        assert!(ix.orphans().is_empty());
    }

    #[test]
    fn orphans_are_unnamed_apps_with_a_live_machine() {
        let mut ix = index(&[
            sighting("named", "m1", Started),
            sighting("orphan", "m2", Suspended),
            sighting("torn-down", "m3", Destroyed),
        ]);
        ix.compare(&row("named", Some("m1"), Some(Started), true), &mut Vec::new());
        assert_eq!(ix.orphans(), ["orphan"]);
    }
}
