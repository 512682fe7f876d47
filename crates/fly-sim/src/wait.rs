//! `GET …/machines/{id}/wait`: long-poll until the machine reaches a state, or 408.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::error::{ApiError, ApiResult, Reply};
use super::machine::{MState, Machine};
use super::query::Query;
use super::shared::{Shared, lock};
use super::world::World;

/// Fly's exact text for a timeout outside 1..=60 seconds.
pub(crate) const TIMEOUT_RANGE: &str =
    "invalid WaitMachineRequest.Timeout: value must be inside range [1s, 1m0s]";
const KNOWN_STATES: &[&str] =
    &["created", "started", "stopped", "suspended", "destroyed", "failed", "settled"];

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WaitParams {
    pub states: Vec<String>,
    pub timeout: Duration,
    pub version: Option<String>,
    pub from_event_id: Option<String>,
}

impl WaitParams {
    pub(crate) fn parse(q: &Query) -> Result<Self, ApiError> {
        let timeout = match q.get("timeout") {
            None | Some("") => 60,
            Some(t) => t
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|t| (1..=60).contains(t))
                .ok_or_else(|| ApiError::invalid(TIMEOUT_RANGE))?,
        };
        let mut states = q.list("state");
        if let Some(bad) = states.iter().find(|s| !KNOWN_STATES.contains(&s.as_str())) {
            return Err(ApiError::invalid(format!(
                "invalid WaitMachineRequest.State: unknown state {bad:?}"
            )));
        }
        if states.is_empty() {
            states.push("started".to_owned());
        }
        let nonempty = |k: &str| q.get(k).filter(|v| !v.is_empty()).map(str::to_owned);
        Ok(Self {
            states,
            timeout: Duration::from_secs(timeout.unsigned_abs()),
            version: nonempty("version").or_else(|| nonempty("instance_id")),
            from_event_id: nonempty("from_event_id"),
        })
    }

    fn wanted(&self) -> String {
        self.states.join(",")
    }
}

/// Either reached (the 200 body) or still waiting (current state, next scheduled transition).
#[derive(Debug)]
pub(crate) enum Probe {
    Reached(Value),
    Waiting(&'static str, Option<Instant>),
}

fn is_settled(m: &Machine) -> bool {
    match m.state {
        MState::Started
        | MState::Stopped
        | MState::Suspended
        | MState::Failed
        | MState::Destroyed => true,
        MState::Created => m.pending.is_empty(),
        _ => false,
    }
}

impl World {
    pub(crate) fn wait_probe(
        &mut self,
        app: &str,
        id: &str,
        p: &WaitParams,
        now: Instant,
    ) -> Result<Probe, ApiError> {
        let m = self.machine(app, id, now)?;
        if p.version.as_ref().is_some_and(|v| *v != m.instance_id) {
            return Ok(Probe::Waiting("replaced", None));
        }
        let state = m.state.as_str();
        let matches = p.states.iter().any(|s| s == state || (s == "settled" && is_settled(m)));
        let event_id = m.last_event_id();
        let fresh = p.from_event_id.as_ref().is_none_or(|from| event_id > *from);
        if matches && fresh {
            let body =
                json!({"ok": true, "state": state, "version": m.instance_id, "event_id": event_id});
            return Ok(Probe::Reached(body));
        }
        Ok(Probe::Waiting(state, m.next_transition()))
    }
}

/// Long-polls: re-checks whenever the world changes or the next transition is due.
pub(crate) async fn wait(shared: &Shared, app: &str, id: &str, q: &Query) -> ApiResult {
    let params = WaitParams::parse(q)?;
    let deadline = Instant::now() + params.timeout;
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        let changed = shared.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let now = Instant::now();
        let probe = lock(&shared.world).wait_probe(app, id, &params, now)?;
        let (current, next) = match probe {
            Probe::Reached(body) => return Ok(Reply::ok(body)),
            Probe::Waiting(current, next) => (current, next),
        };
        if now >= deadline {
            return Err(ApiError::new(
                408,
                format!(
                    "deadline_exceeded: machine failed to reach desired state, {}, currently {current}",
                    params.wanted()
                ),
            ));
        }
        let wake = next.map_or(deadline, |n| n.min(deadline));
        tokio::select! {
            () = tokio::time::sleep_until(wake) => {}
            () = &mut changed => {}
            _ = shutdown.wait_for(|stop| *stop) => {
                return Err(ApiError::new(503, "unavailable: simulator shutting down"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_params() {
        let p =
            WaitParams::parse(&Query::parse("state=stopped&state=suspended,destroyed&timeout=5"));
        let p = p.unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(p.states, ["stopped", "suspended", "destroyed"]);
        assert_eq!(p.timeout, Duration::from_secs(5));
        let p = WaitParams::parse(&Query::parse("instance_id=01ABC"))
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!((p.states.as_slice(), p.timeout.as_secs()), (&["started".to_owned()][..], 60));
        assert_eq!(p.version.as_deref(), Some("01ABC"));
        for bad in ["timeout=0", "timeout=61", "timeout=abc", "timeout=-1", "timeout=60s"] {
            let err = WaitParams::parse(&Query::parse(bad)).err();
            assert_eq!(err, Some(ApiError::invalid(TIMEOUT_RANGE)), "{bad}");
        }
        assert!(WaitParams::parse(&Query::parse("state=running")).is_err());
    }
}
