//! The full verification: a walk over Fly's org machine listing, one page at a time, then one
//! streamed read of the rows compared with what the walk saw, then the orphan sweep.
//!
//! # Guarantees
//! - Memory is one page of the listing plus one small entry per app of ours with a machine
//!   ([`Index`]); rows are compared as the database streams them, never held.
//! - At rest the walk reads one page per `FULL_RESYNC_INTERVAL / 10`, whatever the fleet's
//!   size: 10 Fly calls per interval at most, so a fleet of N machines is verified every
//!   max(interval, N / 10,000 × interval) — 10 min at 10k, 100 min at 100k with the default.
//!   After a start or a resync (a new leader, a listener reconnect) the walk reads its pages
//!   back to back, as fast as the rate limits allow.
//! - Only rows unchanged since the walk began are judged (a row changed during it is judged
//!   by the next walk); every row names its app, so no row's app is taken for an orphan.
//! # Assumptions
//! The org listing is ordered by `updated_at` and its cursor is a position in that order (as
//! the simulator serves it): a machine that changes during the walk moves past the cursor, so
//! every machine that exists when the last page is read has been listed at least once. The
//! drift ticks record into the walk what changed meanwhile, so its states are current.
//! # Caveats
//! Drift a tick cannot see (a machine gone without a `destroyed` record in the listing) is
//! found by the end of the next walk that starts after it: up to two walks (20 min at 10k,
//! ~200 min at 100k). An app of ours holding only destroyed machines and no row is not swept.

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use super::index::Index;
use super::{Drift, DriftError, Sighting};

/// Pages a paced walk reads per `FULL_RESYNC_INTERVAL` (a fleet of 10 pages is verified once
/// per interval; bigger fleets take proportionally longer).
const PAGES_PER_INTERVAL: u32 = 10;
/// Rows changed this long before a walk began are judged by the next one too (clock skew
/// between the database and this process).
const SKEW: chrono::Duration = chrono::Duration::seconds(10);
/// Most sightings per `mark_due` statement.
const REQUEUE_CHUNK: usize = 1_000;

/// One full verification in progress.
pub(super) struct Walk {
    /// Rows changed since are left to the next walk.
    began: DateTime<Utc>,
    /// Pages back to back (after a start or a resync) instead of paced.
    hurry: bool,
    /// The listing's cursor for the next page (`None`: the first page).
    cursor: Option<String>,
    /// The last page has been read: the rows remain to be compared.
    listed: bool,
    next_page: Instant,
    pub(super) seen: Index,
    /// The newest `updated_at` listed (a hurried walk moves the ticks' cursor to it).
    newest: Option<DateTime<Utc>>,
}

impl Walk {
    pub(super) fn new(hurry: bool) -> Self {
        Self {
            began: Utc::now() - SKEW,
            hurry,
            cursor: None,
            listed: false,
            next_page: Instant::now(),
            seen: Index::default(),
            newest: None,
        }
    }

    pub(super) fn hurry(&self) -> bool {
        self.hurry
    }
}

impl Drift {
    /// A hurried walk from its current page to its end, with the report of apps on the
    /// org's shared network first.
    pub(super) async fn walk_through(&mut self) -> Result<(), DriftError> {
        if self.walk.as_ref().is_some_and(|w| w.cursor.is_none()) {
            self.report_shared_network().await?;
        }
        while self.walk.as_ref().is_some_and(|w| !w.listed) {
            self.page().await?;
        }
        let newest = self.walk.as_ref().and_then(|w| w.newest);
        self.finish().await?;
        if let Some(t) = newest {
            self.cursor = Some(self.cursor.map_or(t, |c| c.max(t)));
        }
        Ok(())
    }

    /// A paced walk: its next page if one is due (the report of apps on the org's shared
    /// network before its first), and its end once every page was read.
    pub(super) async fn walk_on(&mut self) -> Result<(), DriftError> {
        let Some(w) = &self.walk else { return Ok(()) };
        let (due, first) = (!w.listed && Instant::now() >= w.next_page, w.cursor.is_none());
        if due {
            if first {
                self.report_shared_network().await?;
            }
            self.page().await?;
        }
        if self.walk.as_ref().is_some_and(|w| w.listed) {
            self.finish().await?;
        }
        Ok(())
    }

    /// Reads the walk's next page into its index.
    async fn page(&mut self) -> Result<(), DriftError> {
        let cursor = self.walk.as_ref().and_then(|w| w.cursor.clone());
        let (org, prefix) = (&self.ctx.settings.org, self.prefix());
        let page = self.ctx.fly.list_org_machines(org, None, cursor.as_deref()).await?;
        let pace = self.ctx.settings.full_resync_interval / PAGES_PER_INTERVAL;
        let Some(w) = self.walk.as_mut() else { return Ok(()) };
        let n = page.machines.len();
        for m in page.machines.into_iter().map(Sighting::of) {
            w.newest = w.newest.max(m.updated_at);
            if m.ours && m.app.starts_with(&prefix) {
                w.seen.record(&m);
            }
        }
        match page.next_cursor.filter(|c| !c.is_empty()) {
            Some(c) if n > 0 => w.cursor = Some(c),
            _ => w.listed = true,
        }
        w.next_page = Instant::now() + pace;
        Ok(())
    }

    /// Compares the rows with the walk, requeues what drifted and sweeps orphans. The walk
    /// ends here whatever happens (a failed read is retried by the next walk).
    async fn finish(&mut self) -> Result<(), DriftError> {
        let Some(mut w) = self.walk.take() else { return Ok(()) };
        let mut drifted = Vec::new();
        self.ctx.store.drift_rows(w.began, |row| w.seen.compare(&row, &mut drifted)).await?;
        let orphans = w.seen.orphans();
        tracing::debug!(apps = w.seen.len(), drifted = drifted.len(), "full verification");
        drop(w);
        for chunk in drifted.chunks(REQUEUE_CHUNK) {
            self.requeue(chunk).await?;
        }
        self.sweep(orphans).await;
        self.metrics.resyncs.with_label_values(&["periodic"]).inc();
        Ok(())
    }
}
