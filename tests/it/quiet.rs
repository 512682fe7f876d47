//! Quiet at rest: once a mixed fleet has converged (running, stopped, and rows in `error` that
//! wait for a change), drift checks and full verifications every few seconds cost no row
//! writes (not even a lease claim) and no per-app Fly call; only org-wide listings remain.

use std::time::Duration;

use crate::support::harness::Harness;
use crate::support::*;
use fly_preview_controller::ops::metrics::{Metrics, RESULTS};
use fly_preview_controller::preview::settings::Settings;
use fly_preview_controller::store::BAD;
use fly_preview_controller::store::{PreviewRow, Seen, StatusWrite, Store};
use fly_sim::SimConfig;
use sqlx::PgPool;
use uuid::Uuid;

const REPO: &str = "https://github.com/acme/site";
/// The simulator's runner exits with git's code 128 for this repository.
const MISSING_REPO: &str = "https://github.com/acme/does-not-exist";
/// How long the converged fleet is watched.
const QUIET_FOR: Duration = Duration::from_secs(60);
/// Fly actions that are org-wide listings (allowed at rest); everything else names an app.
const ORG_WIDE: &[&str] = &["org_machines", "list_apps"];

/// Logs every insert and update of a preview row (a test-only trigger; nothing deletes).
async fn log_row_writes(pool: &PgPool) {
    for sql in [
        "CREATE SCHEMA quiet_test",
        "CREATE TABLE quiet_test.writes (at timestamptz NOT NULL DEFAULT clock_timestamp(), \
         op text NOT NULL, row_after jsonb NOT NULL)",
        "CREATE FUNCTION quiet_test.log() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER \
         SET search_path = pg_catalog AS $$ BEGIN \
           INSERT INTO quiet_test.writes (op, row_after) VALUES (TG_OP, \
             jsonb_build_object('project', NEW.project_id, 'status', NEW.status, \
               'reason', NEW.status_reason, 'attempts', NEW.attempts, \
               'next_attempt_at', NEW.next_attempt_at, 'lease_owner', NEW.lease_owner)); \
           RETURN NULL; END $$",
        "CREATE TRIGGER zz_quiet_test_log AFTER INSERT OR UPDATE \
         ON public.fly_preview_apps FOR EACH ROW EXECUTE FUNCTION quiet_test.log()",
    ] {
        sqlx::query(sql).execute(pool).await.unwrap();
    }
}

async fn row_writes(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT format('%s %s %s', at, op, row_after) FROM quiet_test.writes ORDER BY at",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// The row is where the fleet should rest: the expected status and reason, its generation
/// acted on, and no lease.
fn rests(r: &PreviewRow, status: Status, reason: &str) -> bool {
    r.status == status
        && r.status_reason.as_ref().map(ToString::to_string).as_deref() == Some(reason)
        && r.observed_generation == r.generation
        && r.lease_owner.is_none()
}

#[sqlx::test]
async fn a_converged_mixed_fleet_is_quiet(pool: PgPool) {
    let mut s = Settings::for_tests("personal");
    s.drift_interval = Duration::from_secs(2);
    s.full_resync_interval = Duration::from_secs(10);
    s.init_deadline = Duration::from_secs(3);
    let h = Harness::with_settings(pool.clone(), SimConfig::default(), s).await;
    let expected: Vec<(Uuid, Status, &str)> = vec![
        (insert_row(&pool, USER_A, "q-run", Some(REPO), "main").await, Status::Running, "Ready"),
        (insert_row(&pool, USER_A, "q-stop", Some(REPO), "main").await, Status::Stopped, "Stopped"),
        (
            insert_row(&pool, USER_A, "q-missing", Some(MISSING_REPO), "main").await,
            Status::Error,
            "MachineExited",
        ),
        (
            insert_row(&pool, USER_A, "q-refused", Some(REPO), "main; rm -rf /").await,
            Status::Error,
            "InvalidSpec",
        ),
        (
            insert_row(&pool, USER_A, "q-unhealthy", Some(REPO), "sim-never-healthy").await,
            Status::Error,
            "HealthDeadlineExceeded",
        ),
    ];
    let r = h.start("a");
    let stop = expected[1].0;
    h.wait_row(stop, "the row to be stopped running", |r| r.status == Status::Running).await;
    sqlx::query("UPDATE public.fly_preview_apps SET status = 'stopped' WHERE id = $1")
        .bind(stop)
        .execute(&pool)
        .await
        .unwrap();
    for (id, status, reason) in &expected {
        h.wait_row(*id, reason, |r| rests(r, *status, reason)).await;
    }

    log_row_writes(&pool).await;
    let fly_before = h.sim.request_log().len();
    let passes_before: u64 = passes(&r.metrics);
    let verified_before = r.metrics.resyncs.with_label_values(&["periodic"]).get();
    let events_before = events(&pool).await;
    tokio::time::sleep(QUIET_FOR).await;
    let writes = row_writes(&pool).await;
    let new_events = events(&pool).await - events_before;
    let per_app: Vec<String> = h.sim.request_log()[fly_before..]
        .iter()
        .filter(|q| !ORG_WIDE.contains(&q.action))
        .map(|q| format!("{} {} {} -> {}", q.at_ms, q.method, q.path, q.status))
        .collect();
    let listed = |action: &str| {
        h.sim.request_log()[fly_before..].iter().filter(|q| q.action == action).count()
    };
    let (machine_listings, app_listings) = (listed("org_machines"), listed("list_apps"));
    let verified = r.metrics.resyncs.with_label_values(&["periodic"]).get() - verified_before;
    let passed = passes(&r.metrics) - passes_before;
    r.stop().await;

    println!(
        "quiet for {QUIET_FOR:?}: {} row writes, {} per-app Fly calls, {passed} reconcile \
         passes, {verified} full verifications; org-wide listings: {machine_listings} of \
         machines, {app_listings} of apps",
        writes.len(),
        per_app.len()
    );
    assert!(machine_listings >= 10, "drift checks kept looking at Fly");
    assert!(verified >= 2, "full verifications kept looking at Fly");
    assert!(
        writes.is_empty(),
        "{} row writes at rest, e.g.:\n{}",
        writes.len(),
        writes[..writes.len().min(6)].join("\n")
    );
    assert!(
        per_app.is_empty(),
        "{} per-app Fly calls at rest, e.g.:\n{}",
        per_app.len(),
        per_app[..per_app.len().min(6)].join("\n")
    );
    assert_eq!(passed, 0, "reconcile passes at rest");
    assert_eq!(new_events, 0, "timeline events at rest");
    for (id, status, reason) in &expected {
        let row = h.row(*id).await;
        assert!(rests(&row, *status, reason), "{row:#?}");
    }
}

/// Timeline events recorded so far (every preview).
async fn events(pool: &PgPool) -> i64 {
    let sql = "SELECT count(*) FROM public.fly_preview_events";
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

/// Reconcile passes so far, every result.
fn passes(m: &Metrics) -> u64 {
    RESULTS.iter().map(|r| m.reconciles.with_label_values(&[r]).get()).sum()
}

/// What the row recorded, what drift saw (machine id and state; `None`: gone), requeued?
type Case = (&'static str, StatusWrite, Option<(&'static str, &'static str)>, bool);

/// A row's recorded state, written the way a pass writes it.
fn recorded(
    status: Status,
    reason: Reason,
    machine_state: Option<&str>,
    retry: bool,
) -> StatusWrite {
    StatusWrite {
        status,
        reason,
        error_message: None,
        detail: None,
        preview_url: None,
        fly_machine_id: machine_state.map(|_| "m1".to_owned()),
        machine_state: machine_state.map(Into::into),
        observed_generation: Some(1),
        attempts: 1,
        next_attempt_at: retry.then(|| chrono::Utc::now() + chrono::Duration::minutes(5)),
    }
}

#[sqlx::test]
async fn drift_requeues_a_row_only_for_news_that_matters_to_it(pool: PgPool) {
    use Status::{Error, Running, Stopped};
    let seen = |m: Option<(&str, &str)>| m.map(|(id, st)| (id.to_owned(), st.into()));
    let cases: Vec<Case> = vec![
        (
            "running, its machine stopped",
            recorded(Running, Reason::Ready, Some("started"), false),
            Some(("m1", "stopped")),
            true,
        ),
        (
            "running, its machine destroyed",
            recorded(Running, Reason::Idle, Some("suspended"), false),
            Some(("m1", "destroyed")),
            true,
        ),
        (
            "running, its app gone",
            recorded(Running, Reason::Ready, Some("started"), false),
            None,
            true,
        ),
        (
            "running, its machine still started",
            recorded(Running, Reason::Ready, Some("started"), false),
            Some(("m1", "started")),
            false,
        ),
        (
            "running, a removed duplicate",
            recorded(Running, Reason::Ready, Some("started"), false),
            Some(("m2", "destroyed")),
            false,
        ),
        (
            "exited, seen exited again",
            recorded(Error, Reason::MachineExited, Some("stopped"), false),
            Some(("m1", "stopped")),
            false,
        ),
        (
            "exited, now failed",
            recorded(Error, Reason::MachineExited, Some("stopped"), false),
            Some(("m1", "failed")),
            false,
        ),
        (
            "exited, started again",
            recorded(Error, Reason::MachineExited, Some("stopped"), false),
            Some(("m1", "started")),
            true,
        ),
        (
            "never healthy, still started",
            recorded(Error, Reason::HealthDeadlineExceeded, Some("started"), false),
            Some(("m1", "started")),
            false,
        ),
        (
            "never healthy while starting, now started",
            recorded(Error, Reason::HealthDeadlineExceeded, Some("starting"), false),
            Some(("m1", "started")),
            true,
        ),
        (
            "invalid spec, a machine started",
            recorded(Error, Reason::InvalidSpec, Some("stopped"), false),
            Some(("m1", "started")),
            false,
        ),
        (
            "invalid spec, its app gone",
            recorded(Error, Reason::InvalidSpec, None, false),
            None,
            false,
        ),
        (
            "stopped, a machine started",
            recorded(Stopped, Reason::Stopped, None, false),
            Some(("m1", "started")),
            false,
        ),
        ("stopped, its app gone", recorded(Stopped, Reason::Stopped, None, false), None, false),
        (
            "retrying, seen as recorded",
            recorded(Error, Reason::FlyApiError, Some("stopped"), true),
            Some(("m1", "stopped")),
            false,
        ),
        (
            "retrying, its machine destroyed",
            recorded(Error, Reason::FlyApiError, Some("stopped"), true),
            Some(("m1", "destroyed")),
            true,
        ),
    ];
    let s = Store::new(pool.clone(), "a");
    for (i, (what, write, machine, requeued)) in cases.into_iter().enumerate() {
        let id = insert_row(&pool, USER_A, &format!("rule-{i}"), Some(REPO), "main").await;
        let row = s.claim(1, Duration::from_secs(30), 1_000).await.unwrap().remove(0);
        assert_eq!(row.id, id);
        s.write_status(id, row.generation, &write, Lease::Release).await.unwrap().unwrap();
        let sighting = Seen { app: row.fly_app_name.clone(), machine: seen(machine) };
        let n = s.mark_due(&[sighting.clone(), sighting], BAD).await.unwrap();
        let due = s
            .get(id)
            .await
            .unwrap()
            .unwrap()
            .next_attempt_at
            .is_some_and(|t| t <= chrono::Utc::now());
        assert_eq!((n == 1, due), (requeued, requeued), "{what}");
        if requeued {
            // Due already: the same sighting again writes nothing.
            let again = Seen { app: row.fly_app_name.clone(), machine: seen(machine) };
            assert_eq!(s.mark_due(&[again], BAD).await.unwrap(), 0, "{what}: requeued twice");
            let row = s.claim(1, Duration::from_secs(30), 1_000).await.unwrap().remove(0);
            s.write_status(id, row.generation, &write, Lease::Release).await.unwrap().unwrap();
        }
    }
}

#[sqlx::test]
async fn a_pass_that_changed_nothing_is_counted(pool: PgPool) {
    let h = Harness::new(pool.clone(), SimConfig::default()).await;
    let run = insert_row(&pool, USER_A, "c-run", Some(REPO), "main").await;
    let missing = insert_row(&pool, USER_A, "c-missing", Some(MISSING_REPO), "main").await;
    let r = h.start("a");
    h.wait_row(run, "running", |r| rests(r, Status::Running, "Ready")).await;
    let before = h.wait_row(missing, "exited", |r| rests(r, Status::Error, "MachineExited")).await;
    assert_eq!(r.metrics.reconciles_unchanged.get(), 0, "every pass so far changed the row");

    // Due again with no news (what a drift loop does): each pass repeats what the row says.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SELECT set_config('fly_preview.controller', 'on', true)")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("UPDATE public.fly_preview_apps SET next_attempt_at = now()")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    h.eventually("both passes counted", || r.metrics.reconciles_unchanged.get() == 2).await;
    let after = h.wait_row(missing, "parked", |r| r.lease_owner.is_none()).await;
    assert_eq!(after.attempts, before.attempts + 1, "a loop shows as climbing attempts");
    assert_eq!((after.status, after.error_message), (before.status, before.error_message));
    assert!(r.metrics.encode().contains("fly_preview_reconciles_unchanged_total 2"));
    r.stop().await;
}
