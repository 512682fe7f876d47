//! Runtime settings of the controller, derived from the validated command line (or built
//! directly by tests, the demo and the benchmark).

use std::time::Duration;

use crate::model::validate::Rules;
use crate::preview::cost::PriceTable;
use crate::preview::machine_config::RunnerSettings;
use crate::preview::sync::SyncSettings;
use crate::runtime::backoff::Backoff;

#[derive(Debug, Clone)]
pub struct Settings {
    pub org: String,
    pub region: Option<String>,
    pub rules: Rules,
    pub runner: RunnerSettings,
    pub backoff: Backoff,
    pub concurrency: usize,
    /// Backstop poll: the loop otherwise sleeps until a NOTIFY, a finished pass or the
    /// earliest due row.
    pub poll_interval: Duration,
    pub lease: Duration,
    pub init_deadline: Duration,
    /// Longest single wait for a machine to start inside one pass.
    pub wait_slice: Duration,
    /// Delay before looking again at a machine that is starting or not healthy yet.
    pub health_poll: Duration,
    /// After creating, updating or starting a machine the pass ends and the row is looked
    /// at again this much later (when the machine can be expected to be up).
    pub boot_estimate: Duration,
    /// Previews one user may have wanting to run at once (0 = no limit).
    pub max_previews_per_user: u32,
    /// Changes (deploys, redeploys, teardowns) applied to one row per `redeploy_window`
    /// (0 = no limit); further requests coalesce into the latest, applied when the window ends.
    pub redeploy_budget: u32,
    pub redeploy_window: Duration,
    pub drift_interval: Duration,
    pub full_resync_interval: Duration,
    pub orphan_grace: Duration,
    pub sweep_dry_run: bool,
    pub shutdown_timeout: Duration,
    /// How often queue figures may be refreshed for metrics: at this cadence while rows
    /// change, at least every [`Settings::stats_max_age`] at rest.
    pub stats_interval: Duration,
    /// How long the leader row names the leader without renewal (the row only says who
    /// leads; the advisory lock decides, and a dead leader's lock goes with its connection).
    pub leader_ttl: Duration,
    /// Sync on save (`preview::sync`).
    pub sync: SyncSettings,
    /// Prices for the fleet's estimated cost (`preview::cost`).
    pub prices: PriceTable,
    /// A running preview nobody opened for this long is torn down (`preview::expiry`);
    /// zero = never.
    pub idle_ttl: Duration,
}

impl Settings {
    /// Most rows of one user in flight at once (an eighth of the workers, at least 2): one
    /// account's burst cannot occupy every worker and database connection.
    pub fn per_user_inflight(&self) -> i64 {
        i64::try_from(self.concurrency / 8).unwrap_or(i64::MAX).max(2)
    }

    /// Free worker slots a claim keeps for started work (an eighth of the workers; none below
    /// 8): a booting machine's re-check or a retry of a deploy in progress that falls due while
    /// new rows fill the other slots starts at once, not when the next pass ends.
    pub fn kept_for_started(&self) -> usize {
        self.concurrency / 8
    }

    /// Passes of started work the preview loop may run beyond `concurrency` (a quarter of the
    /// workers, rounded down): a retry whose message named its time starts then even while
    /// every worker is busy, however long the passes that hold them take. Other work never
    /// runs in them, so new rows' throughput is unchanged.
    pub fn reserved_for_started(&self) -> usize {
        self.concurrency / 4
    }

    /// The preview loop's longest sleep between claims: `poll_interval`. It only bounds what
    /// a lost notification can delay: the loop also sleeps until the earliest due row, and
    /// `next_due` counts a row another replica holds as due when its lease expires, so the
    /// rows of a replica that crashed are claimed when its leases run out, without polling.
    pub fn backstop_poll(&self) -> Duration {
        self.poll_interval.max(Duration::from_millis(100))
    }

    /// The teardown loop's backstop: four of the preview loop's. Tombstones come only from
    /// deletes, whose NOTIFY wakes it (so does a listener reconnect), and their next due
    /// time counts leases too; at rest this is its only statement.
    pub fn teardown_backstop(&self) -> Duration {
        self.backstop_poll() * 4
    }

    /// How often the leader checks its lock connection (one statement, which also renews the
    /// leader row): a third of `leader_ttl`.
    pub fn leader_renew(&self) -> Duration {
        (self.leader_ttl / 3).max(Duration::from_millis(100))
    }

    /// How long a follower waits on one connection before it reconnects and waits again (a
    /// silently dead connection never reports the lock): five `leader_ttl`s.
    pub fn leader_rearm(&self) -> Duration {
        self.leader_ttl * 5
    }

    /// At rest (no pass, notification or drift repair since the last refresh) the queue and
    /// fleet gauges are refreshed this rarely: ten stats intervals.
    pub fn stats_max_age(&self) -> Duration {
        self.stats_interval * 10
    }

    /// Defaults suitable for tests and the demo (fast timings).
    pub fn for_tests(org: &str) -> Self {
        Self {
            org: org.into(),
            region: None,
            rules: Rules::default(),
            runner: RunnerSettings::default(),
            backoff: Backoff { base: Duration::from_millis(100), cap: Duration::from_secs(2) },
            concurrency: 16,
            poll_interval: Duration::from_millis(200),
            lease: Duration::from_secs(5),
            init_deadline: Duration::from_secs(30),
            wait_slice: Duration::from_secs(5),
            health_poll: Duration::from_millis(200),
            boot_estimate: Duration::from_millis(300),
            max_previews_per_user: 0,
            redeploy_budget: 0,
            redeploy_window: Duration::from_secs(600),
            drift_interval: Duration::from_millis(500),
            full_resync_interval: Duration::from_secs(5),
            orphan_grace: Duration::from_secs(1),
            sweep_dry_run: false,
            shutdown_timeout: Duration::from_secs(5),
            stats_interval: Duration::from_millis(500),
            leader_ttl: Duration::from_secs(6),
            prices: PriceTable::default(),
            idle_ttl: Duration::ZERO,
            sync: SyncSettings {
                sweep_interval: Duration::from_millis(200),
                idle_sweep_interval: Duration::from_millis(200),
                ..Default::default()
            },
        }
    }
}
