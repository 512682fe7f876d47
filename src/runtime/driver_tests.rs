//! The runtime against an in-memory queue and a scripted reconciler: what happens to a row's
//! lease and to the reconciler's hooks for each kind of pass, with no database and no Fly.

use std::sync::Mutex;

use super::*;
use crate::ops::shutdown::Shutdown;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Script {
    Ok,
    Retry,
    Block,
    /// Succeeds after this long (a pass in a slow Fly call).
    Slow(Duration),
}

struct Row {
    id: Uuid,
    script: Script,
    /// Due this long after the queue's first claim.
    due: Duration,
    /// A row the queue ranks first (may take a reserve slot).
    first: bool,
}

impl Row {
    fn new(id: Uuid, script: Script) -> Self {
        Self { id, script, due: Duration::ZERO, first: false }
    }
}

impl Claimed for Row {
    fn id(&self) -> Uuid {
        self.id
    }
    fn span(&self) -> tracing::Span {
        tracing::info_span!("test", id = %self.id)
    }
}

/// Rows handed out once, when due; every release recorded. With `overdue`, it also says a
/// row is due now that no claim returns (its user at the per-user cap, say). Of a claim's
/// `limit`, `reserve` go only to rows ranked first.
#[derive(Default)]
struct MemQueue {
    due: Mutex<Vec<Row>>,
    released: Mutex<Vec<Uuid>>,
    overdue: bool,
    claims: Mutex<usize>,
    reserve: usize,
    epoch: Mutex<Option<tokio::time::Instant>>,
}

impl MemQueue {
    /// Time since the first claim.
    fn elapsed(&self) -> Duration {
        self.epoch.lock().unwrap().get_or_insert_with(tokio::time::Instant::now).elapsed()
    }
}

impl Queue for MemQueue {
    type Row = Row;
    fn reserve(&self) -> usize {
        self.reserve
    }
    async fn claim(&self, limit: usize) -> Result<Vec<Row>, crate::runtime::QueueError> {
        *self.claims.lock().unwrap() += 1;
        let now = self.elapsed();
        let mut due = self.due.lock().unwrap();
        due.sort_by_key(|r| !r.first);
        let (mut rest, mut out) = (limit.saturating_sub(self.reserve), Vec::new());
        let mut i = 0;
        while i < due.len() && out.len() < limit {
            let r = &due[i];
            if r.due <= now && (r.first || rest > 0) {
                rest = rest.saturating_sub(usize::from(!r.first));
                out.push(due.remove(i));
            } else {
                i += 1;
            }
        }
        Ok(out)
    }
    async fn next_due(&self) -> Result<Option<Duration>, crate::runtime::QueueError> {
        let now = self.elapsed();
        let later = self.due.lock().unwrap().iter().map(|r| r.due.saturating_sub(now)).min();
        Ok(if self.overdue { Some(Duration::ZERO) } else { later })
    }
    async fn renew(&self, ids: &[Uuid]) -> Result<Vec<Uuid>, crate::runtime::QueueError> {
        Ok(ids.to_vec())
    }
    async fn release(&self, id: Uuid) -> Result<bool, crate::runtime::QueueError> {
        self.released.lock().unwrap().push(id);
        Ok(true)
    }
    async fn release_all(&self) -> Result<u64, crate::runtime::QueueError> {
        Ok(0)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("scripted failure")]
struct Failure;

/// Records what the runtime asked of it.
#[derive(Default)]
struct Scripted {
    /// When each pass started.
    started: Mutex<Vec<(Uuid, tokio::time::Instant)>>,
    recorded: Mutex<Vec<(Uuid, Action<&'static str>)>>,
    blocked: Mutex<Vec<&'static str>>,
    oks: Mutex<usize>,
}

impl Reconciler for Scripted {
    type Row = Row;
    type Error = Failure;
    type Block = &'static str;

    async fn reconcile(&self, row: &Row) -> Result<Action<&'static str>, Failure> {
        self.started.lock().unwrap().push((row.id, tokio::time::Instant::now()));
        match row.script {
            Script::Ok => Ok(Action::AwaitChange),
            Script::Slow(d) => {
                tokio::time::sleep(d).await;
                Ok(Action::AwaitChange)
            }
            Script::Retry | Script::Block => Err(Failure),
        }
    }
    fn error_policy(&self, row: &Row, _: &Failure) -> Action<&'static str> {
        match row.script {
            Script::Block => Action::Block("token rejected"),
            _ => Action::requeue(chrono::DateTime::UNIX_EPOCH, Duration::from_secs(5)),
        }
    }
    async fn record_error(
        &self,
        row: &Row,
        _: &Failure,
        a: Action<&'static str>,
    ) -> Result<(), Failure> {
        self.recorded.lock().unwrap().push((row.id, a));
        Ok(())
    }
    fn error_kind(_: &Failure) -> &'static str {
        "scripted"
    }
    fn error_label(&self, _: &Failure) -> &'static str {
        "error"
    }
    fn block(&self, condition: &'static str) {
        self.blocked.lock().unwrap().push(condition);
    }
    fn pass_ok(&self) {
        *self.oks.lock().unwrap() += 1;
    }
}

fn runtime(rows: Vec<Row>) -> Runtime<MemQueue, Scripted> {
    let metrics = crate::ops::metrics::Metrics::new();
    Runtime {
        queue: Arc::new(MemQueue { due: Mutex::new(rows), ..MemQueue::default() }),
        reconciler: Arc::new(Scripted::default()),
        timing: Timing {
            concurrency: 4,
            poll_interval: Duration::from_millis(10),
            shutdown_timeout: Duration::from_secs(1),
        },
        metrics,
        health: Arc::new(Health::default()),
        wake: Arc::new(Notify::new()),
        inflight: InFlight::default(),
    }
}

/// Runs `rt` for `after` (of paused time), then shuts it down.
async fn run_for(rt: &Runtime<MemQueue, Scripted>, after: Duration) {
    let shutdown = Shutdown::new();
    let phase = shutdown.subscribe();
    let stop = async {
        tokio::time::sleep(after).await;
        shutdown.trigger();
    };
    tokio::join!(rt.run(phase), stop);
}

#[tokio::test(start_paused = true)]
async fn each_pass_ends_in_exactly_one_of_write_record_or_release() {
    let (ok, retry, block) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let rows = vec![
        Row::new(ok, Script::Ok),
        Row::new(retry, Script::Retry),
        Row::new(block, Script::Block),
    ];
    let rt = runtime(rows);
    run_for(&rt, Duration::from_millis(100)).await;

    let r = &rt.reconciler;
    assert_eq!(*r.oks.lock().unwrap(), 1, "the successful pass proves the gate");
    let recorded = r.recorded.lock().unwrap().clone();
    let due = chrono::DateTime::UNIX_EPOCH + chrono::Duration::seconds(5);
    assert_eq!(recorded, vec![(retry, Action::RequeueAt(due))], "only the retry is recorded");
    assert_eq!(*r.blocked.lock().unwrap(), vec!["token rejected"]);
    assert_eq!(
        *rt.queue.released.lock().unwrap(),
        vec![block],
        "a block writes nothing and releases"
    );
    assert!(rt.inflight.lock().unwrap().is_empty(), "every pass left the in-flight set");
    let m = &rt.metrics;
    assert_eq!(m.reconciles.with_label_values(&["ok"]).get(), 1);
    assert_eq!(m.reconciles.with_label_values(&["error"]).get(), 2);
    assert_eq!(m.reconcile_errors.with_label_values(&["scripted"]).get(), 2);
}

#[tokio::test(start_paused = true)]
async fn an_overdue_row_no_claim_returns_is_claimed_again_after_a_growing_pause() {
    let mut rt = runtime(Vec::new());
    rt.queue = Arc::new(MemQueue { overdue: true, ..MemQueue::default() });
    rt.timing.poll_interval = Duration::from_secs(30);
    run_for(&rt, Duration::from_secs(10)).await;

    // 5 ms doubling to 1.28 s: 9 claims in the first 2.56 s, then one per 1.28 s (about 15).
    // Every 5 ms, as before, would be 2,000.
    let claims = *rt.queue.claims.lock().unwrap();
    assert!((10..=20).contains(&claims), "{claims} claims in 10 s");
}

#[test]
fn the_pause_is_the_due_time_within_its_floor_and_the_poll() {
    let poll = Duration::from_secs(30);
    let ms = Duration::from_millis;
    assert_eq!(pause(None, 0, poll), poll, "nothing due: the backstop poll");
    assert_eq!(pause(Some(ms(0)), 0, poll), MIN_SLEEP);
    assert_eq!(pause(Some(ms(0)), 1, poll), MIN_SLEEP, "the first fruitless claim: as before");
    assert_eq!(pause(Some(ms(0)), 2, poll), ms(10));
    assert_eq!(pause(Some(ms(0)), 40, poll), MAX_FRUITLESS_SLEEP);
    assert_eq!(pause(Some(ms(300)), 0, poll), ms(300), "a row due later: its due time");
    assert_eq!(pause(Some(Duration::from_secs(90)), 0, poll), poll);
}

/// Scenario "every slot busy in a 10 s pass, then a retry that named its time falls due at
/// 1 s, with other work due then too": the retry starts at 1 s in a reserve slot; the other
/// work waits for a slot of the concurrency (10 s).
#[tokio::test(start_paused = true)]
async fn a_row_ranked_first_starts_in_a_reserve_slot_while_every_slot_is_busy() {
    let slow = Script::Slow(Duration::from_secs(10));
    let busy: Vec<Row> = (0..4).map(|_| Row::new(Uuid::new_v4(), slow)).collect();
    let busy_ids: Vec<Uuid> = busy.iter().map(|r| r.id).collect();
    let second = Duration::from_secs(1);
    let retry = Row { due: second, first: true, ..Row::new(Uuid::new_v4(), Script::Ok) };
    let other = Row { due: second, ..Row::new(Uuid::new_v4(), Script::Ok) };
    let (retry_id, other_id) = (retry.id, other.id);
    let mut rt = runtime(Vec::new());
    let rows = busy.into_iter().chain([retry, other]).collect();
    rt.queue = Arc::new(MemQueue { due: Mutex::new(rows), reserve: 1, ..MemQueue::default() });
    let t0 = tokio::time::Instant::now();
    run_for(&rt, Duration::from_secs(15)).await;

    let started = rt.reconciler.started.lock().unwrap().clone();
    let at = |id| started.iter().find(|(r, _)| *r == id).map(|(_, t)| *t - t0);
    assert_eq!(started.len(), 6, "every row had its pass");
    for id in busy_ids {
        assert_eq!(at(id), Some(Duration::ZERO), "every slot of the concurrency is busy");
    }
    let retry_at = at(retry_id).unwrap();
    assert!(retry_at >= second && retry_at < second + MIN_SLEEP * 2, "retry at {retry_at:?}");
    let other_at = at(other_id).unwrap();
    assert!(other_at >= Duration::from_secs(10), "other work waits for a slot: {other_at:?}");
}

/// Without a reserve, the same retry waits for the first slot to free (10 s): what the
/// reserve is for.
#[tokio::test(start_paused = true)]
async fn without_a_reserve_a_row_ranked_first_waits_for_a_busy_slot() {
    let slow = Script::Slow(Duration::from_secs(10));
    let busy: Vec<Row> = (0..4).map(|_| Row::new(Uuid::new_v4(), slow)).collect();
    let retry =
        Row { due: Duration::from_secs(1), first: true, ..Row::new(Uuid::new_v4(), Script::Ok) };
    let retry_id = retry.id;
    let rt = runtime(busy.into_iter().chain([retry]).collect());
    let t0 = tokio::time::Instant::now();
    run_for(&rt, Duration::from_secs(15)).await;
    let started = rt.reconciler.started.lock().unwrap().clone();
    let at = started.iter().find(|(r, _)| *r == retry_id).map(|(_, t)| *t - t0).unwrap();
    assert!(at >= Duration::from_secs(10), "{at:?}");
}

#[test]
fn a_lease_given_back_by_a_finished_pass_is_not_counted_lost() {
    let (kept, finished, taken) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let inflight = InFlight::default();
    lock(&inflight).extend([kept, finished, taken]);
    let asked = [kept, finished, taken];
    // The renewal held only `kept`; meanwhile `finished`'s pass wrote its row and ended.
    lock(&inflight).remove(&finished);
    assert_eq!(lost_leases(&inflight, &asked, &[kept]), 1, "only `taken` is lost");
    assert_eq!(lost_leases(&inflight, &asked, &asked), 0);
}
