//! Fault injection: which API action, what goes wrong, and when (seeded, replayable).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

macro_rules! actions {
    ($($variant:ident => $name:literal),* $(,)?) => {
        /// One Machines API operation, as classified by the simulator's router.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Action { $($variant),* }

        impl Action {
            /// Every action, `Any` last.
            pub const ALL: &'static [Action] = &[$(Action::$variant),*];

            /// Snake-case name (`create_machine`), as used in fault specs and the request log.
            pub fn as_str(self) -> &'static str {
                match self { $(Action::$variant => $name),* }
            }
        }
    };
}

actions! {
    CreateApp => "create_app", GetApp => "get_app", DeleteApp => "delete_app",
    ListApps => "list_apps", ListIps => "list_ips", AssignIp => "assign_ip",
    DeleteIp => "delete_ip", ListMachines => "list_machines", CreateMachine => "create_machine",
    GetMachine => "get_machine", UpdateMachine => "update_machine",
    StartMachine => "start_machine", StopMachine => "stop_machine",
    SuspendMachine => "suspend_machine", RestartMachine => "restart_machine",
    DestroyMachine => "destroy_machine", WaitMachine => "wait_machine", Lease => "lease",
    OrgMachines => "org_machines", ExecMachine => "exec_machine",
    ListSecrets => "list_secrets", UpdateSecrets => "update_secrets", GetSecret => "get_secret",
    SetSecret => "set_secret", DeleteSecret => "delete_secret", Any => "any",
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = FaultSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s == "*" {
            return Ok(Action::Any);
        }
        Action::ALL
            .iter()
            .copied()
            .find(|a| a.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| FaultSpecError::UnknownAction(s.to_owned()))
    }
}

/// What goes wrong.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fault {
    /// Answer with this HTTP status and a Fly-shaped `{"error": …}` body, before handling.
    Status(u16),
    /// Delay the request by this much, then handle it normally.
    Latency(Duration),
    /// Close the connection without sending a response.
    Drop,
    /// Perform the request (e.g. commit the new machine), then answer 408 `deadline_exceeded`.
    TimeoutAfterCommit,
    /// 412 with `"status":"insufficient_capacity"` (what Fly answers when a region is full).
    InsufficientCapacity,
}

/// When a rule fires.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Trigger {
    Always,
    /// The first N requests matching the rule's action.
    FirstN(u32),
    /// Each matching request with this probability, drawn from the seeded RNG.
    Probability(f64),
}

/// `action:fault[:trigger]`, e.g. `create_machine:408-after-commit:p=0.1`.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultRule {
    pub action: Action,
    pub fault: Fault,
    pub when: Trigger,
}

/// Why a fault spec string was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FaultSpecError {
    #[error(
        "fault spec {0:?} must look like ACTION:FAULT[:TRIGGER], e.g. create_machine:503:first=2"
    )]
    Shape(String),
    #[error("unknown action {0:?}; expected one of: {names}", names = action_names())]
    UnknownAction(String),
    #[error(
        "unknown fault {0:?}; expected an HTTP status 400..=599, latency=DURATION, drop, \
         408-after-commit or capacity"
    )]
    UnknownFault(String),
    #[error("bad latency {0:?}: {1}")]
    Latency(String, String),
    #[error("unknown trigger {0:?}; expected always, first=N or p=PROBABILITY (0..=1)")]
    UnknownTrigger(String),
}

fn action_names() -> String {
    Action::ALL.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(", ")
}

impl FromStr for Fault {
    type Err = FaultSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "drop" => return Ok(Fault::Drop),
            "408-after-commit" | "timeout-after-commit" => return Ok(Fault::TimeoutAfterCommit),
            "capacity" | "insufficient_capacity" => return Ok(Fault::InsufficientCapacity),
            _ => {}
        }
        if let Some(value) = s.strip_prefix("latency=") {
            return humantime::parse_duration(value)
                .map(Fault::Latency)
                .map_err(|e| FaultSpecError::Latency(value.to_owned(), e.to_string()));
        }
        match s.parse::<u16>() {
            Ok(code) if (400..=599).contains(&code) => Ok(Fault::Status(code)),
            _ => Err(FaultSpecError::UnknownFault(s)),
        }
    }
}

impl FromStr for Trigger {
    type Err = FaultSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        let bad = || FaultSpecError::UnknownTrigger(s.clone());
        if s == "always" {
            Ok(Trigger::Always)
        } else if let Some(n) = s.strip_prefix("first=") {
            n.parse().map(Trigger::FirstN).map_err(|_| bad())
        } else if let Some(p) = s.strip_prefix("p=") {
            match p.parse::<f64>() {
                Ok(p) if (0.0..=1.0).contains(&p) => Ok(Trigger::Probability(p)),
                _ => Err(bad()),
            }
        } else {
            Err(bad())
        }
    }
}

impl FromStr for FaultRule {
    type Err = FaultSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.trim().split(':').collect();
        let (action, fault, when) = match parts.as_slice() {
            [a, f] if !a.is_empty() && !f.is_empty() => (a, f, "always"),
            [a, f, w] if !a.is_empty() && !f.is_empty() => (a, f, *w),
            _ => return Err(FaultSpecError::Shape(s.to_owned())),
        };
        Ok(FaultRule { action: action.parse()?, fault: fault.parse()?, when: when.parse()? })
    }
}

impl fmt::Display for FaultRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.action)?;
        match self.fault {
            Fault::Status(code) => write!(f, "{code}")?,
            Fault::Latency(d) => write!(f, "latency={}", humantime::format_duration(d))?,
            Fault::Drop => f.write_str("drop")?,
            Fault::TimeoutAfterCommit => f.write_str("408-after-commit")?,
            Fault::InsufficientCapacity => f.write_str("capacity")?,
        }
        match self.when {
            Trigger::Always => f.write_str(":always"),
            Trigger::FirstN(n) => write!(f, ":first={n}"),
            Trigger::Probability(p) => write!(f, ":p={p}"),
        }
    }
}

/// What the fault engine decided for one request.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct FaultPlan {
    pub latency: Duration,
    /// `Status`, `Drop` or `InsufficientCapacity`: answer instead of handling.
    pub terminal: Option<Fault>,
    pub after_commit: bool,
    /// How many rules fired (for `faults_injected_total`).
    pub fired: u64,
}

#[derive(Debug)]
pub(crate) struct FaultEngine {
    rules: Vec<(FaultRule, u32)>,
    rng: StdRng,
}

impl FaultEngine {
    pub(crate) fn new(seed: u64, rules: Vec<FaultRule>) -> Self {
        let rng = StdRng::seed_from_u64(seed ^ 0x5eed_fa17_5eed_fa17);
        Self { rules: rules.into_iter().map(|r| (r, 0)).collect(), rng }
    }

    pub(crate) fn add(&mut self, rule: FaultRule) {
        self.rules.push((rule, 0));
    }

    pub(crate) fn clear(&mut self) {
        self.rules.clear();
    }

    /// Evaluates every rule matching `action`, in order; every matching probability rule
    /// draws exactly once, so the same request sequence always gets the same faults.
    pub(crate) fn evaluate(&mut self, action: Action) -> FaultPlan {
        let mut plan = FaultPlan::default();
        for (rule, matched) in &mut self.rules {
            if rule.action != Action::Any && rule.action != action {
                continue;
            }
            let fires = match rule.when {
                Trigger::Always => true,
                Trigger::FirstN(n) => *matched < n,
                Trigger::Probability(p) => self.rng.random::<f64>() < p,
            };
            *matched = matched.saturating_add(1);
            if !fires {
                continue;
            }
            plan.fired += 1;
            match rule.fault {
                Fault::Latency(d) => plan.latency += d,
                Fault::TimeoutAfterCommit => plan.after_commit = true,
                terminal => {
                    plan.terminal.get_or_insert(terminal);
                }
            }
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_n_counts_matching_requests_only() {
        let rule: FaultRule = "start_machine:503:first=2".parse().unwrap_or_else(|e| panic!("{e}"));
        let mut engine = FaultEngine::new(1, vec![rule]);
        assert_eq!(engine.evaluate(Action::GetMachine).terminal, None);
        assert_eq!(engine.evaluate(Action::StartMachine).terminal, Some(Fault::Status(503)));
        assert_eq!(engine.evaluate(Action::StartMachine).terminal, Some(Fault::Status(503)));
        assert_eq!(engine.evaluate(Action::StartMachine).terminal, None);
    }

    #[test]
    fn latencies_add_up_and_first_terminal_wins() {
        let rules = ["any:latency=1s", "get_app:latency=500ms", "any:502", "get_app:drop"];
        let rules = rules.iter().map(|r| r.parse().unwrap_or_else(|e| panic!("{e}"))).collect();
        let plan = FaultEngine::new(1, rules).evaluate(Action::GetApp);
        assert_eq!(plan.latency, Duration::from_millis(1500));
        assert_eq!(plan.terminal, Some(Fault::Status(502)));
        assert_eq!(plan.fired, 4);
    }

    #[test]
    fn fault_specs_parse_and_reject_clearly() {
        let rule: FaultRule =
            "create_machine:408-after-commit:p=0.1".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rule.action, Action::CreateMachine);
        assert_eq!(rule.fault, Fault::TimeoutAfterCommit);
        assert_eq!(rule.when, Trigger::Probability(0.1));
        assert_eq!(rule.to_string().parse::<FaultRule>().unwrap_or_else(|e| panic!("{e}")), rule);
        let rule: FaultRule = "any:503:first=5".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (rule.action, rule.fault, rule.when),
            (Action::Any, Fault::Status(503), Trigger::FirstN(5))
        );
        let rule: FaultRule = "get_machine:latency=200ms".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (rule.fault, rule.when),
            (Fault::Latency(Duration::from_millis(200)), Trigger::Always)
        );
        assert_eq!(
            "create_app:drop:always".parse::<FaultRule>().unwrap_or_else(|e| panic!("{e}")).fault,
            Fault::Drop
        );
        for (spec, hint) in [
            ("", "ACTION:FAULT"),
            ("create_machine", "ACTION:FAULT"),
            ("a:b:c:d", "ACTION:FAULT"),
            ("create_vm:503", "expected one of: create_app"),
            ("any:200", "HTTP status 400..=599"),
            ("any:latency=soon", "bad latency"),
            ("any:503:p=1.5", "p=PROBABILITY"),
            ("any:503:first=-1", "first=N"),
            ("any:503:sometimes", "always"),
        ] {
            let err = spec
                .parse::<FaultRule>()
                .err()
                .unwrap_or_else(|| panic!("{spec:?} parsed"))
                .to_string();
            assert!(err.contains(hint), "{spec:?}: {err}");
        }
        for action in Action::ALL {
            assert_eq!(
                action.as_str().parse::<Action>().unwrap_or_else(|e| panic!("{e}")),
                *action
            );
        }
    }
}
