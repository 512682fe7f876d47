//! A controller replica (or several) against real Postgres and the in-process simulator.

use super::Status;
use std::sync::Arc;
use std::time::Duration;

use fly_preview_controller::fly::{FlyClient, FlyClientConfig, Secret};
use fly_preview_controller::ops::health::Health;
use fly_preview_controller::ops::metrics::Metrics;
use fly_preview_controller::ops::shutdown::Shutdown;
use fly_preview_controller::preview::daemon::{self, Parts};
use fly_preview_controller::preview::settings::Settings;
use fly_preview_controller::store::{PreviewRow, Store};
use fly_sim::{SimConfig, SimHandle, Simulator};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use uuid::Uuid;

pub const TOKEN: &str = "fo1_test_token_value_0123456789";

pub struct Harness {
    pub pool: PgPool,
    pub sim: SimHandle,
    pub settings: Arc<Settings>,
}

/// One running replica.
pub struct Replica {
    pub shutdown: Shutdown,
    pub join: JoinHandle<()>,
    pub health: Arc<Health>,
    pub metrics: Metrics,
}

impl Replica {
    /// Graceful: drain and release.
    pub async fn stop(self) {
        self.shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(30), self.join)
            .await
            .expect("replica did not stop")
            .unwrap();
    }

    /// A crash: every task of the replica stops wherever it is.
    pub async fn crash(self) {
        self.join.abort();
        let _ = self.join.await;
    }
}

impl Harness {
    pub async fn new(pool: PgPool, sim: SimConfig) -> Self {
        Self::with_settings(pool, sim, Settings::for_tests("personal")).await
    }

    pub async fn with_settings(pool: PgPool, sim: SimConfig, settings: Settings) -> Self {
        let sim = Simulator::start(SimConfig { token: Some(TOKEN.into()), ..sim }).await.unwrap();
        Self { pool, sim, settings: Arc::new(settings) }
    }

    pub fn fly(&self, metrics: &Metrics) -> FlyClient {
        self.fly_with_token(metrics, TOKEN)
    }

    pub fn fly_with_token(&self, metrics: &Metrics, token: &str) -> FlyClient {
        let cfg = FlyClientConfig {
            base_url: self.sim.base_url(),
            token: Secret::new(token),
            request_timeout: Duration::from_secs(10),
            rate_limit: true,
        };
        FlyClient::new(cfg, Some(metrics.clone())).unwrap()
    }

    pub fn start(&self, owner: &str) -> Replica {
        self.start_with(owner, self.settings.clone())
    }

    pub fn start_with(&self, owner: &str, settings: Arc<Settings>) -> Replica {
        self.start_with_token(owner, settings, TOKEN)
    }

    /// A replica with its own settings and Fly token (e.g. a misconfigured one).
    pub fn start_with_token(&self, owner: &str, settings: Arc<Settings>, token: &str) -> Replica {
        let metrics = Metrics::new();
        let health = Arc::new(Health::default());
        let parts = Parts {
            pool: self.pool.clone(),
            fly: self.fly_with_token(&metrics, token),
            settings,
            owner: owner.into(),
            metrics: metrics.clone(),
            health: health.clone(),
        };
        let shutdown = Shutdown::new();
        let s2 = shutdown.clone();
        let join = tokio::spawn(async move { daemon::run(parts, &s2).await });
        Replica { shutdown, join, health, metrics }
    }

    pub fn store(&self) -> Store {
        Store::new(self.pool.clone(), "test-observer")
    }

    pub async fn row(&self, id: Uuid) -> PreviewRow {
        self.store().get(id).await.unwrap().expect("row exists")
    }

    /// Polls the row until `pred` holds (the deadline only bounds a broken run).
    pub async fn wait_row(
        &self,
        id: Uuid,
        what: &str,
        pred: impl Fn(&PreviewRow) -> bool,
    ) -> PreviewRow {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let row = self.row(id).await;
            if pred(&row) {
                return row;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; row is {row:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls until every row satisfies `pred`.
    pub async fn wait_all(
        &self,
        what: &str,
        secs: u64,
        pred: impl Fn(&PreviewRow) -> bool,
    ) -> Vec<PreviewRow> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let rows = self.store().list_all().await.unwrap();
            if rows.iter().all(&pred) {
                return rows;
            }
            if tokio::time::Instant::now() > deadline {
                let bad: Vec<_> = rows.iter().filter(|r| !pred(r)).take(3).collect();
                panic!("timed out waiting for {what}; e.g. {bad:#?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls until `cond` holds.
    pub async fn eventually(&self, what: &str, cond: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while !cond() {
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Requests to Fly that mention this app.
    pub fn calls_for(&self, app: &str) -> Vec<String> {
        self.sim
            .request_log()
            .into_iter()
            .filter(|r| r.path.contains(app))
            .map(|r| format!("{} {} -> {}", r.method, r.path, r.status))
            .collect()
    }
}

pub fn is_running(r: &PreviewRow) -> bool {
    r.status == Status::Running && r.observed_generation == r.generation
}
