//! One sync on save for one row: claim it, exec the runner's `sync` in its machine, read the
//! answer, write `served_revision` (or the reason it could not be confirmed). Never changes
//! `status`: a failed sync leaves a running preview running the previous commit.

use serde::Deserialize;
use tokio::time::Instant;
use uuid::Uuid;

use crate::fly::{ExecResponse, FlyError};
use crate::model::SyncFailureKind as Kind;
use crate::preview::sync::settings::SyncCtx;
use crate::store::{StoreError, SyncTarget};

/// What the runner's `sync` answered, as the controller reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `{"ok":true,"revision":…}`: the commit now served.
    Serves(String),
    /// `{"ok":true,"revision":<old>,"installing":<new>}`: a dependency change is installing.
    Installing { serves: String, installing: String },
    /// Not confirmed: the kind and a short message for `error_message`.
    Failed { kind: Kind, message: String },
}

#[derive(Deserialize)]
struct Line {
    ok: bool,
    #[serde(default)]
    revision: Option<String>,
    #[serde(default)]
    installing: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

fn failed(kind: Kind, message: impl Into<String>) -> Answer {
    let mut message: String = message.into();
    if message.len() > 300 {
        let cut = (0..=300).rev().find(|i| message.is_char_boundary(*i)).unwrap_or(0);
        message.truncate(cut);
    }
    Answer::Failed { kind, message }
}

/// Reads the runner's one JSON line (the last non-empty stdout line) and its exit code.
pub fn parse_answer(r: &ExecResponse) -> Answer {
    let last = r.stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default();
    let Ok(line) = serde_json::from_str::<Line>(last.trim()) else {
        let why = r.stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("no output");
        let code = r.exit_code.map_or_else(|| "?".to_owned(), |c| c.to_string());
        return failed(Kind::BadAnswer, format!("runner sync exited {code}: {why}"));
    };
    match (line.ok, line.revision, line.installing) {
        (true, Some(serves), Some(installing)) => Answer::Installing { serves, installing },
        (true, Some(serves), None) => Answer::Serves(serves),
        (true, None, _) => failed(Kind::BadAnswer, "runner sync answered ok without a revision"),
        (false, ..) => {
            let tag = line.error.unwrap_or_default();
            let kind = match tag.as_str() {
                "timeout" => Kind::Timeout,
                "not_running" => Kind::RunnerNotRunning,
                _ => Kind::SyncFailed,
            };
            let message = line.message.unwrap_or_default();
            failed(kind, format!("runner sync failed ({tag}): {message}"))
        }
    }
}

/// How one attempt ended, for the lane's coalescing and backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    /// Not eligible now (not running, machine not started, leased, already confirmed).
    Skipped,
    /// `served_revision` now equals `revision`.
    Confirmed,
    /// The row asks for a newer commit than the one tried: sync again now.
    MovedOn,
    /// Not confirmed: try again after a backoff (the kind decides how long).
    Failed(Kind),
}

/// One attempt for row `id`.
pub async fn sync_once(ctx: &SyncCtx, id: Uuid) -> Result<Done, StoreError> {
    let started = Instant::now();
    let Some(t) = ctx.store.sync_claim(id, ctx.settings.lease()).await? else {
        return Ok(Done::Skipped);
    };
    let answer = ask(ctx, &t).await;
    let done = record(ctx, &t, answer).await;
    ctx.metrics.sync_duration.observe(started.elapsed().as_secs_f64());
    if let Ok(Done::Failed(kind)) = &done {
        ctx.metrics.sync_failures.with_label_values(&[kind.as_str()]).inc();
    }
    if done.is_err() {
        ctx.metrics.sync_failures.with_label_values(&[Kind::Db.as_str()]).inc();
    }
    done
}

/// The one Fly call: exec of the runner's `sync`.
async fn ask(ctx: &SyncCtx, t: &SyncTarget) -> Answer {
    let cmd = ctx.settings.command();
    let argv: Vec<&str> = cmd.iter().map(String::as_str).collect();
    match ctx.fly.exec_machine(&t.app, &t.machine_id, &argv, ctx.settings.exec_timeout).await {
        Ok(r) => parse_answer(&r),
        Err(FlyError::Timeout(i)) => failed(Kind::Timeout, format!("exec of runner sync: {i}")),
        Err(e @ FlyError::LeaseConflict(_)) => failed(Kind::MachineNotStarted, e.to_string()),
        Err(e) => failed(Kind::FlyApi, e.to_string()),
    }
}

async fn record(ctx: &SyncCtx, t: &SyncTarget, answer: Answer) -> Result<Done, StoreError> {
    let store = &ctx.store;
    let (kind, message) = match answer {
        Answer::Serves(sha) => match store.sync_served(t.id, &sha).await? {
            None => return Ok(Done::Skipped),
            Some((true, _)) => return Ok(Done::Confirmed),
            Some((false, now)) if now.as_deref() != Some(t.revision.as_str()) => {
                store.release(t.id).await?;
                return Ok(Done::MovedOn);
            }
            Some((false, _)) => {
                let why =
                    format!("runner serves {sha}, not {} (not on the branch yet?)", t.revision);
                (Kind::CommitNotFound, why)
            }
        },
        Answer::Installing { serves, installing } => (
            Kind::Installing,
            format!("installing dependencies of {installing}; still serving {serves}"),
        ),
        Answer::Failed { kind, message } => (kind, message),
    };
    if kind == Kind::MachineNotStarted {
        store.release(t.id).await?;
    } else {
        let says = user_message(kind, &t.revision);
        store.sync_failed(t.id, &t.revision, kind.reason(), &says, &message).await?;
    }
    Ok(Done::Failed(kind))
}

/// One sentence for the person who saved (`error_message`); the runner's or the API's own
/// words go to `status_detail`.
pub fn user_message(kind: Kind, revision: &str) -> String {
    let keeps = "the preview keeps showing the previous version";
    match kind {
        Kind::CommitNotFound => format!(
            "the branch does not have your save {revision} yet; the preview loads it as soon as it is pushed"
        ),
        Kind::Installing => format!(
            "installing the dependencies of your save {revision}; {keeps} until they are ready"
        ),
        Kind::Timeout => {
            format!(
                "the preview did not confirm your save {revision} in time; {keeps} and tries again"
            )
        }
        Kind::SyncFailed => {
            format!("the preview could not load your save {revision}; {keeps} and tries again")
        }
        _ => format!(
            "the preview could not be asked to load your save {revision}; {keeps} and tries again"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(code: i64, stdout: &str) -> ExecResponse {
        ExecResponse { exit_code: Some(code), stdout: stdout.into(), ..Default::default() }
    }

    #[test]
    fn reads_the_runner_answers() {
        let ok = resp(0, "noise\n{\"ok\":true,\"revision\":\"abc1234\"}\n");
        assert_eq!(parse_answer(&ok), Answer::Serves("abc1234".into()));
        let inst = resp(0, r#"{"ok":true,"revision":"a","installing":"b"}"#);
        let want = Answer::Installing { serves: "a".into(), installing: "b".into() };
        assert_eq!(parse_answer(&inst), want);
        let kinds = [
            (r#"{"ok":false,"error":"timeout","message":"no answer within 10s"}"#, Kind::Timeout),
            (r#"{"ok":false,"error":"not_running","message":"ENOENT"}"#, Kind::RunnerNotRunning),
            (r#"{"ok":false,"error":"fetch_failed","message":"fatal"}"#, Kind::SyncFailed),
            (r#"{"ok":true}"#, Kind::BadAnswer),
            ("", Kind::BadAnswer),
        ];
        for (line, kind) in kinds {
            match parse_answer(&resp(1, line)) {
                Answer::Failed { kind: k, message } => {
                    assert_eq!(k, kind, "{line}");
                    assert!(!message.is_empty());
                }
                other => panic!("{line}: {other:?}"),
            }
        }
    }

    #[test]
    fn people_read_a_sentence_naming_their_save() {
        for k in Kind::ALL {
            let m = user_message(*k, "abc1234");
            assert!(m.contains("abc1234") && !m.contains("runner") && !m.contains("exec"), "{m}");
        }
    }

    #[test]
    fn reasons_and_long_messages() {
        use crate::model::state::Reason;
        assert_eq!(Kind::Timeout.reason(), Reason::SyncTimedOut);
        assert_eq!(Kind::CommitNotFound.reason(), Reason::SyncCommitNotFound);
        assert_eq!(Kind::Installing.reason(), Reason::SyncInstalling);
        assert_eq!(Kind::BadAnswer.reason(), Reason::SyncFailed);
        let Answer::Failed { message, .. } = failed(Kind::SyncFailed, "é".repeat(400)) else {
            panic!()
        };
        assert!(message.len() <= 300);
    }
}
