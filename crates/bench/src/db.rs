//! The benchmark's own database on the local Postgres server: recreated per run, migrated
//! with the real migrations, filled with one bulk insert, and observed through
//! `pg_stat_database` (read over the admin connection, so reading it costs the bench
//! database nothing). Every statement the bench itself sends to the bench database is
//! counted, so it can be subtracted from the transaction counts.

use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use uuid::Uuid;

use fly_preview_controller::model::state::{Reason, Status};
use fly_preview_controller::store;

/// Whether `name` is a plain lowercase identifier (safe to splice into DDL unquoted).
pub fn valid_db_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && name.len() < 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Drops the bench database (`name` is checked by [`valid_db_name`]).
pub async fn drop_db(admin: &PgPool, name: &str) -> anyhow::Result<()> {
    anyhow::ensure!(valid_db_name(name), "invalid bench database name {name:?}");
    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
    sqlx::query(sqlx::AssertSqlSafe(sql)).execute(admin).await?;
    Ok(())
}
const REPO: &str = "https://github.com/acme/site";

/// One freshly created and migrated bench database.
pub struct BenchDb {
    pub pool: PgPool,
    /// Connection string of the bench database (handed to the daemon).
    pub url: String,
    /// Database name, for `pg_stat_database`.
    pub name: String,
    own: AtomicU64,
}

/// `DATABASE_URL` with the database name replaced.
pub fn url_for(admin_url: &str, db: &str) -> anyhow::Result<String> {
    let mut u = url::Url::parse(admin_url).context("--database-url is not a valid URL")?;
    u.set_path(&format!("/{db}"));
    Ok(u.to_string())
}

pub async fn connect(url: &str, max: u32) -> anyhow::Result<PgPool> {
    let opts: PgConnectOptions = url.parse().context("--database-url could not be parsed")?;
    // Quiet: re-running the idempotent migrations makes Postgres send "skipping" notices.
    let opts =
        opts.application_name("fly-preview-bench").options([("client_min_messages", "warning")]);
    let pool = PgPoolOptions::new().max_connections(max).connect_with(opts).await;
    pool.map_err(|e| anyhow::anyhow!("cannot connect to the bench's Postgres: {e}"))
}

impl BenchDb {
    /// Drops (forcibly) and recreates the bench database, then applies the migrations.
    pub async fn recreate(admin: &PgPool, admin_url: &str, name: &str) -> anyhow::Result<Self> {
        drop_db(admin, name).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(admin).await?;
        let url = url_for(admin_url, name)?;
        let pool = connect(&url, 4).await?;
        store::migrate::run(&pool).await.context("migrating the bench database")?;
        // The bench's users hold far more rows than the database's default cap per user.
        sqlx::query("UPDATE fly_preview_controller.settings SET max_rows_per_user = 0")
            .execute(&pool)
            .await?;
        Ok(Self { pool, url, name: name.to_owned(), own: AtomicU64::new(0) })
    }

    /// Statements the bench itself sent to the bench database so far.
    pub fn own_statements(&self) -> u64 {
        self.own.load(Ordering::Relaxed)
    }

    pub fn count(&self, n: u64) {
        self.own.fetch_add(n, Ordering::Relaxed);
    }

    /// Inserts `n` valid rows named `{tag}-{i}` with one `INSERT … SELECT generate_series`
    /// per attempt; md5-prefix collisions (which the database refuses) are left out and topped
    /// up. Returns the count.
    pub async fn insert_fleet(&self, tag: &str, n: usize) -> anyhow::Result<u64> {
        let mut have = 0u64;
        let mut from = 1i64;
        while have < n as u64 {
            let want = n as u64 - have;
            let to = from + i64::try_from(want)?;
            have += self.insert_series(tag, from, to - 1).await?;
            from = to;
        }
        Ok(have)
    }

    async fn insert_series(&self, tag: &str, from: i64, to: i64) -> anyhow::Result<u64> {
        let sql = "INSERT INTO public.fly_preview_apps \
             (user_id, project_id, fly_app_name, preview_url, status, github_repo_url, github_branch) \
             SELECT DISTINCT ON (nm) u, p, nm, 'https://' || nm || '.fly.dev', 'pending', $4, 'main' \
             FROM (SELECT md5('bench-user-' || (g % 97))::uuid AS u, $1 || '-' || g AS p \
                   FROM generate_series($2::bigint, $3::bigint) g) s, \
             LATERAL (SELECT 'roseram-' || left(md5(s.u::text || '-' || s.p), 8) AS nm) x \
             WHERE NOT EXISTS (SELECT 1 FROM public.fly_preview_apps a WHERE a.fly_app_name = nm) \
             ORDER BY nm \
             ON CONFLICT (fly_app_name) DO NOTHING";
        self.count(1);
        let r =
            sqlx::query(sql).bind(tag).bind(from).bind(to).bind(REPO).execute(&self.pool).await?;
        Ok(r.rows_affected())
    }

    /// One row inserted the way the web app does; returns (id, app name).
    pub async fn insert_one(&self, user: Uuid, project: &str) -> anyhow::Result<(Uuid, String)> {
        let name =
            fly_preview_controller::model::naming::app_name("roseram", &user.to_string(), project);
        let sql = "INSERT INTO public.fly_preview_apps \
             (user_id, project_id, fly_app_name, preview_url, status, github_repo_url, github_branch) \
             VALUES ($1, $2, $3, $4, 'pending', $5, 'main') RETURNING id";
        self.count(1);
        let id: Uuid = sqlx::query_scalar(sql)
            .bind(user)
            .bind(project)
            .bind(&name)
            .bind(fly_preview_controller::model::naming::preview_url(&name))
            .bind(REPO)
            .fetch_one(&self.pool)
            .await?;
        Ok((id, name))
    }

    /// `n` rows of one user (projects `{tag}-1..n`) in one statement; returns how many landed.
    pub async fn insert_user_rows(&self, user: Uuid, tag: &str, n: usize) -> anyhow::Result<u64> {
        let sql = "INSERT INTO public.fly_preview_apps \
             (user_id, project_id, fly_app_name, preview_url, status, github_repo_url, github_branch) \
             SELECT $1, p, nm, 'https://' || nm || '.fly.dev', $4, $5, 'main' \
             FROM (SELECT $2 || '-' || g AS p FROM generate_series(1, $3::bigint) g) s, \
             LATERAL (SELECT 'roseram-' || left(md5($1::text || '-' || s.p), 8) AS nm) x \
             ON CONFLICT (fly_app_name) DO NOTHING";
        self.count(1);
        let r = sqlx::query(sql)
            .bind(user)
            .bind(tag)
            .bind(i64::try_from(n)?)
            .bind(Status::Pending)
            .bind(REPO)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    /// `n` rows of one user (projects `{tag}-1..n`); returns their (id, app name).
    pub async fn insert_user_ids(
        &self,
        user: Uuid,
        tag: &str,
        n: usize,
    ) -> anyhow::Result<Vec<(Uuid, String)>> {
        let mut out = Vec::with_capacity(n);
        for i in 1..=n {
            out.push(self.insert_one(user, &format!("{tag}-{user}-{i}")).await?);
        }
        Ok(out)
    }

    /// A status write as the web app sends it (`stopped` / `pending`: a request).
    pub async fn set_status(&self, id: Uuid, status: &str) -> anyhow::Result<()> {
        self.count(1);
        sqlx::query("UPDATE public.fly_preview_apps SET status = $2 WHERE id = $1")
            .bind(id)
            .bind(status)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Deletes one row (as the web app does).
    pub async fn delete(&self, id: Uuid) -> anyhow::Result<()> {
        self.count(1);
        sqlx::query("DELETE FROM public.fly_preview_apps WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// (rows due now, rows due within a minute (work under way), rows in `error` for
    /// anything but the quota, and their distinct `reason: message`), one snapshot.
    pub async fn due_and_errors(&self) -> anyhow::Result<(i64, i64, i64, Vec<String>)> {
        let sql = "SELECT count(*) FILTER (WHERE next_attempt_at <= now()), \
                          count(*) FILTER (WHERE next_attempt_at <= now() + interval '1 minute'), \
                          count(*) FILTER (WHERE failed), \
                          coalesce(array_agg(DISTINCT coalesce(status_reason::text, '-') || ': ' \
                                   || left(coalesce(error_message, ''), 160)) \
                                   FILTER (WHERE failed), '{}') \
                   FROM (SELECT *, status = $1 AND status_reason IS DISTINCT FROM $2 AS failed \
                         FROM public.fly_preview_apps) r";
        self.count(1);
        Ok(sqlx::query_as(sql)
            .bind(Status::Error)
            .bind(Reason::QuotaExceeded)
            .fetch_one(&self.pool)
            .await?)
    }

    /// Every row's app name.
    pub async fn all_app_names(&self) -> anyhow::Result<Vec<String>> {
        self.count(1);
        let sql = "SELECT fly_app_name FROM public.fly_preview_apps";
        Ok(sqlx::query_scalar(sql).fetch_all(&self.pool).await?)
    }

    /// App names of one user's rows.
    pub async fn app_names_of(&self, user: Uuid) -> anyhow::Result<Vec<String>> {
        let sql = "SELECT fly_app_name FROM public.fly_preview_apps WHERE user_id = $1";
        self.count(1);
        Ok(sqlx::query_scalar(sql).bind(user).fetch_all(&self.pool).await?)
    }

    /// (running, refused by the quota) among one user's rows.
    pub async fn user_counts(&self, user: Uuid) -> anyhow::Result<(i64, i64)> {
        let sql = "SELECT count(*) FILTER (WHERE status = $2), \
                          count(*) FILTER (WHERE status_reason = $3) \
                   FROM public.fly_preview_apps WHERE user_id = $1";
        self.count(1);
        Ok(sqlx::query_as(sql)
            .bind(user)
            .bind(Status::Running)
            .bind(Reason::QuotaExceeded)
            .fetch_one(&self.pool)
            .await?)
    }

    /// A branch change on one row (a spec change: the controller updates the machine).
    pub async fn change_branch(&self, id: Uuid, branch: &str) -> anyhow::Result<()> {
        self.count(1);
        sqlx::query("UPDATE public.fly_preview_apps SET github_branch = $2 WHERE id = $1")
            .bind(id)
            .bind(branch)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// (running at the current generation, in error) among rows whose project has `tag-`.
    pub async fn progress(&self, tag: &str) -> anyhow::Result<(i64, i64)> {
        let sql = "SELECT count(*) FILTER (WHERE status = 'running' AND observed_generation = generation), \
                          count(*) FILTER (WHERE status = 'error') \
                   FROM public.fly_preview_apps WHERE project_id LIKE $1 || '-%'";
        self.count(1);
        Ok(sqlx::query_as(sql).bind(tag).fetch_one(&self.pool).await?)
    }

    /// Up to `n` (id, app name) of converged rows of the fleet.
    pub async fn some_running(&self, tag: &str, n: usize) -> anyhow::Result<Vec<(Uuid, String)>> {
        let sql = "SELECT id, fly_app_name FROM public.fly_preview_apps \
                   WHERE project_id LIKE $1 || '-%' AND status = 'running' ORDER BY id LIMIT $2";
        self.count(1);
        Ok(sqlx::query_as(sql).bind(tag).bind(i64::try_from(n)?).fetch_all(&self.pool).await?)
    }

    /// Server-side timings of the fleet: (first request → last row running in seconds,
    /// per-row request → running p50, p99, max), over rows running now.
    pub async fn timings(&self, tag: &str) -> anyhow::Result<RowTimings> {
        let sql = "WITH r AS (SELECT requested_at, last_transition_at, \
                     extract(epoch FROM last_transition_at - requested_at)::float8 AS t \
                   FROM public.fly_preview_apps WHERE project_id LIKE $1 || '-%' AND status = 'running') \
                   SELECT coalesce(extract(epoch FROM max(last_transition_at) - min(requested_at))::float8, 0), \
                          coalesce(min(t), 0), \
                          coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY t), 0), \
                          coalesce(percentile_cont(0.99) WITHIN GROUP (ORDER BY t), 0), \
                          coalesce(max(t), 0) FROM r";
        self.count(1);
        let (span, min, p50, p99, max): (f64, f64, f64, f64, f64) =
            sqlx::query_as(sql).bind(tag).fetch_one(&self.pool).await?;
        Ok(RowTimings { span, min, p50, p99, max })
    }

    /// The naive job's "mark running" (as the controller would, so the trigger lets it be).
    pub async fn mark_running(&self, id: Uuid) -> anyhow::Result<()> {
        let sql = concat!(
            "UPDATE public.fly_preview_apps SET status = 'running', observed_generation = generation, ",
            "next_attempt_at = 'infinity', last_transition_at = now() WHERE id = $1 AND ",
            "(SELECT pg_catalog.set_config('fly_preview.controller', 'on', true)) IS NOT NULL"
        );
        self.count(1);
        sqlx::query(sql).bind(id).execute(&self.pool).await?;
        Ok(())
    }

    /// Pending rows in insertion order (what the naive job picks up on a tick).
    pub async fn pending(&self) -> anyhow::Result<Vec<PendingRow>> {
        let sql = "SELECT id, fly_app_name, generation FROM public.fly_preview_apps \
                   WHERE status = 'pending' ORDER BY created_at, id";
        self.count(1);
        Ok(sqlx::query_as(sql).fetch_all(&self.pool).await?)
    }

    pub async fn close(self) {
        self.pool.close().await;
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PendingRow {
    pub id: Uuid,
    pub fly_app_name: String,
    pub generation: i64,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct RowTimings {
    /// Earliest request → latest transition to running (seconds, database clock).
    pub span: f64,
    /// Per row, request → running: the first row to run, p50, p99, the last.
    pub min: f64,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

/// Committed + rolled-back transactions of the bench database so far (`pg_stat_database`;
/// each autocommit statement is one transaction). Lags by up to ~1 s per busy backend.
pub async fn xacts(admin: &PgPool, db: &str) -> anyhow::Result<u64> {
    let sql = "SELECT (xact_commit + xact_rollback)::int8 FROM pg_stat_database WHERE datname = $1";
    let n: Option<i64> = sqlx::query_scalar(sql).bind(db).fetch_optional(admin).await?;
    Ok(u64::try_from(n.unwrap_or(0)).unwrap_or(0))
}

pub async fn server_version(admin: &PgPool) -> String {
    sqlx::query_scalar::<_, String>("SHOW server_version")
        .fetch_one(admin)
        .await
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_and_urls() {
        assert!(valid_db_name("fly_preview_bench") && valid_db_name("_b2"));
        for bad in ["", "2x", "Bench", "a-b", "a;drop", "x y", &"a".repeat(64)] {
            assert!(!valid_db_name(bad), "{bad}");
        }
        let url = url_for("postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "b");
        assert_eq!(
            url.ok().as_deref(),
            Some("postgres://postgres@127.0.0.1:5432/b?sslmode=disable")
        );
    }
}
