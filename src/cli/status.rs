//! `status`: what an operator needs at a glance, as a table or JSON.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::model::MachineState;
use crate::model::state::{DesiredState, Reason, Status};
use crate::preview::cost::{PRICES_AS_OF, Size, UserCost};
use crate::store::{EventRow, PreviewRow};

#[derive(Debug, Serialize)]
pub struct StatusLine {
    pub id: String,
    pub app: String,
    pub status: Status,
    pub reason: Option<Reason>,
    pub desired_state: DesiredState,
    pub machine_state: Option<MachineState>,
    pub machine_id: Option<String>,
    pub preview_url: Option<String>,
    pub age_seconds: i64,
    pub attempts: i32,
    pub next_retry: Option<DateTime<Utc>>,
    pub error: Option<String>,
}

impl StatusLine {
    pub fn from_row(r: &PreviewRow, now: DateTime<Utc>) -> Self {
        let retry = r.next_attempt_at.filter(|_| r.status == Status::Error);
        Self {
            id: r.id.to_string(),
            app: r.fly_app_name.clone(),
            status: r.status,
            reason: r.status_reason,
            desired_state: r.desired_state,
            machine_state: r.machine_state.clone(),
            machine_id: r.fly_machine_id.clone(),
            preview_url: r.preview_url.clone(),
            age_seconds: (now - r.created_at).num_seconds().max(0),
            attempts: r.attempts,
            next_retry: retry,
            error: r.error_message.clone(),
        }
    }
}

/// `3d`, `5h`, `12m`, `40s`.
pub fn short_age(seconds: i64) -> String {
    match seconds {
        s if s >= 86_400 => format!("{}d", s / 86_400),
        s if s >= 3_600 => format!("{}h", s / 3_600),
        s if s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

fn retry_text(l: &StatusLine, now: DateTime<Utc>) -> String {
    match (l.status, l.next_retry) {
        (Status::Error, Some(t)) if t > now => {
            format!("in {}", short_age((t - now).num_seconds() + 1))
        }
        (Status::Error, Some(_)) => "due".into(),
        (Status::Error, None) => "on change".into(),
        _ => "-".into(),
    }
}

fn clip(s: &str, n: usize) -> String {
    let one_line: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if one_line.chars().count() <= n {
        return one_line;
    }
    let mut out: String = one_line.chars().take(n.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Renders the table printed by `status` (and the demo's live view).
pub fn table(lines: &[StatusLine], now: DateTime<Utc>) -> String {
    let mut out = format!(
        "{:<18} {:<13} {:<10} {:>5} {:>8} {:<11} {}\n",
        "APP", "STATUS", "MACHINE", "AGE", "ATTEMPTS", "NEXT RETRY", "DETAIL"
    );
    for l in lines {
        let detail = l.error.as_deref().or(l.reason.map(Reason::as_str)).unwrap_or("");
        let detail = if l.status == Status::Running {
            l.preview_url.as_deref().unwrap_or(detail)
        } else {
            detail
        };
        out.push_str(&format!(
            "{:<18} {:<13} {:<10} {:>5} {:>8} {:<11} {}\n",
            clip(&l.app, 18),
            clip(l.status.as_str(), 13),
            clip(l.machine_state.as_ref().map_or("-", MachineState::as_str), 10),
            short_age(l.age_seconds),
            l.attempts,
            retry_text(l, now),
            clip(detail, 90)
        ));
    }
    if lines.is_empty() {
        out.push_str("(no previews)\n");
    }
    out
}

/// Renders `status --by-user`: one line per user, most expensive first.
pub fn users_table(users: &[UserCost], size: &Size) -> String {
    let mut out =
        format!("{:<36} {:>8} {:>8} {:>14}\n", "USER", "PREVIEWS", "STARTED", "$/MONTH (EST.)");
    for u in users {
        out.push_str(&format!(
            "{:<36} {:>8} {:>8} {:>14.2}\n",
            u.user_id, u.previews, u.started, u.monthly_dollars
        ));
    }
    if users.is_empty() {
        out.push_str("(no previews)\n");
    }
    out.push_str(&format!("machines: {}; prices: {} (PRICE_TABLE)\n", size.label(), PRICES_AS_OF));
    out
}

/// `+1.2s`: a step's elapsed time.
fn elapsed(ms: Option<i64>) -> String {
    ms.map_or_else(|| "-".into(), |ms| format!("+{:.1}s", ms as f64 / 1e3))
}

/// Renders a preview's timeline (oldest first), printed by `status --app NAME`.
pub fn timeline(app: &str, events: &[EventRow]) -> String {
    let mut out = format!("timeline of {app}\n");
    out.push_str(&format!(
        "{:<24} {:>9} {:<20} {:<22} {}\n",
        "AT (UTC)", "STEP", "EVENT", "REASON", "MESSAGE"
    ));
    for e in events {
        let revision = e.detail.get("revision").and_then(|r| r.as_str());
        let message = e.message.as_deref().or(revision).unwrap_or("");
        out.push_str(&format!(
            "{:<24} {:>9} {:<20} {:<22} {}\n",
            e.at.format("%Y-%m-%d %H:%M:%S%.3f"),
            elapsed(e.elapsed_ms),
            clip(&e.kind, 20),
            clip(e.reason.as_deref().unwrap_or("-"), 22),
            clip(message, 100)
        ));
    }
    if events.is_empty() {
        out.push_str("(no events: no preview has this app name, or nothing happened yet)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeline_prints_one_line_per_event() {
        let at = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 12, 7, 1, 2, 3).unwrap();
        let e = |kind: &str, reason: Option<&str>, message: Option<&str>, detail| EventRow {
            at,
            kind: kind.into(),
            reason: reason.map(Into::into),
            message: message.map(Into::into),
            detail,
            elapsed_ms: Some(1500),
        };
        let events = [
            e("queued", Some("DeployRequested"), None, serde_json::json!({})),
            e("sync_confirmed", None, None, serde_json::json!({"revision": "abc1234"})),
            e(
                "crash_loop",
                Some("DevServerCrashed"),
                Some("kept\ncrashing"),
                serde_json::json!({}),
            ),
        ];
        let out = timeline("roseram-1", &events);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 5, "{out}");
        assert!(lines[2].contains("queued") && lines[2].contains("+1.5s"), "{out}");
        assert!(lines[3].contains("abc1234"), "{out}");
        assert!(lines[4].contains("DevServerCrashed") && lines[4].contains("kept crashing"));
        assert!(timeline("x", &[]).contains("no events"));
    }

    #[test]
    fn ages_are_short() {
        assert_eq!(short_age(5), "5s");
        assert_eq!(short_age(125), "2m");
        assert_eq!(short_age(7_300), "2h");
        assert_eq!(short_age(200_000), "2d");
    }

    #[test]
    fn clip_keeps_tables_on_one_line() {
        assert_eq!(clip("a\nb", 10), "a b");
        assert_eq!(clip("abcdef", 4), "abc…");
    }
}
