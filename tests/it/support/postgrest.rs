//! Requests as PostgREST makes them for the web app (supabase-js → `/rest/v1/fly_preview_apps`):
//! logged in as `authenticator`, one transaction per request that first runs
//! `set_config('search_path', …)`, `set_config('role', <jwt role>)`,
//! `set_config('request.jwt.claims', <claims>)`, `set_config('request.method', …)` (all
//! transaction-local), then one statement of PostgREST's shape: a CTE `pgrst_source` doing the
//! INSERT/SELECT/UPDATE/DELETE with the JSON body bound as `$1` and read with
//! `json_to_recordset`/`json_to_record`, `RETURNING "public"."fly_preview_apps".*`, and the
//! rows aggregated to a JSON array (the response body).

use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

const TABLE: &str = "fly_preview_apps";

/// The web app's JSON keys and the column types PostgREST reads them with.
const TYPES: &[(&str, &str)] = &[
    ("user_id", "uuid"),
    ("project_id", "text"),
    ("fly_app_name", "text"),
    ("preview_url", "text"),
    ("status", "text"),
    ("error_message", "text"),
    ("github_repo_url", "text"),
    ("github_branch", "text"),
    ("desired_state", "text"),
    ("id", "uuid"),
    ("generation", "bigint"),
    ("observed_generation", "bigint"),
    ("attempts", "integer"),
    ("next_attempt_at", "timestamptz"),
    ("lease_expires_at", "timestamptz"),
    ("last_transition_at", "timestamptz"),
    ("requested_at", "timestamptz"),
    ("created_at", "timestamptz"),
    ("updated_at", "timestamptz"),
    ("opened_at", "timestamptz"),
    ("secret", "boolean"),
];

/// Who makes the request: the JWT's role and, for a signed-in user, its `sub`.
#[derive(Clone, Copy, Debug)]
pub enum Jwt {
    Anon,
    User(Uuid),
}

pub struct PostgRest {
    pool: PgPool,
}

fn columns(body: &Value) -> Vec<&str> {
    let obj = match body {
        Value::Array(a) => a.first().and_then(Value::as_object),
        v => v.as_object(),
    };
    let mut cols: Vec<&str> =
        obj.map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
    cols.sort_unstable();
    cols
}

fn typed(cols: &[&str]) -> String {
    cols.iter()
        .map(|c| {
            let ty = TYPES.iter().find(|(k, _)| k == c).map_or("text", |(_, t)| t);
            format!("\"{c}\" {ty}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn quoted(cols: &[&str], prefix: &str) -> String {
    cols.iter().map(|c| format!("{prefix}\"{c}\"")).collect::<Vec<_>>().join(", ")
}

/// `"public"."<table>"` as PostgREST names a table.
fn qualified(table: &str) -> String {
    format!("\"public\".\"{table}\"")
}

/// Wraps the mutation/selection in PostgREST's response query.
fn respond(table: &str, source: &str) -> String {
    format!(
        "WITH pgrst_source AS ({source}) SELECT pg_catalog.count(_postgrest_t) AS page_total, \
         coalesce(json_agg(_postgrest_t), '[]')::text AS body \
         FROM (SELECT \"{table}\".* FROM \"pgrst_source\" AS \"{table}\") _postgrest_t"
    )
}

/// `POST /rest/v1/fly_preview_apps` with a JSON object or array body.
pub fn insert_sql(body: &Value) -> String {
    insert_sql_in(TABLE, body)
}

/// `POST /rest/v1/<table>` with a JSON object or array body.
pub fn insert_sql_in(table: &str, body: &Value) -> String {
    let cols = columns(body);
    let q = qualified(table);
    respond(
        table,
        &format!(
            "INSERT INTO {q}({}) SELECT {} FROM (SELECT $1::json AS json_data) pgrst_payload, \
         LATERAL (SELECT {} FROM json_to_recordset(CASE WHEN json_typeof(pgrst_payload.json_data) = 'array' \
         THEN pgrst_payload.json_data ELSE json_build_array(pgrst_payload.json_data) END) AS _({})) pgrst_body \
         RETURNING {q}.*",
            quoted(&cols, ""),
            quoted(&cols, "\"pgrst_body\"."),
            quoted(&cols, ""),
            typed(&cols)
        ),
    )
}

/// `PATCH /rest/v1/fly_preview_apps?<filter>` (`filter` is PostgREST's WHERE, e.g. `"id" = '…'`).
pub fn update_sql(filter: &str, body: &Value) -> String {
    update_sql_in(TABLE, filter, body)
}

/// `PATCH /rest/v1/<table>?<filter>`.
pub fn update_sql_in(table: &str, filter: &str, body: &Value) -> String {
    let cols = columns(body);
    let set = cols.iter().map(|c| format!("\"{c}\" = \"pgrst_body\".\"{c}\"")).collect::<Vec<_>>();
    let q = qualified(table);
    respond(
        table,
        &format!(
            "UPDATE {q} SET {} FROM (SELECT $1::json AS json_data) pgrst_payload, \
         LATERAL (SELECT {} FROM json_to_record(pgrst_payload.json_data) AS _({}) LIMIT 1) pgrst_body \
         WHERE {filter} RETURNING {q}.*",
            set.join(", "),
            quoted(&cols, ""),
            typed(&cols)
        ),
    )
}

/// `GET /rest/v1/<table>?<filter>` (table as PostgREST names it: schema-qualified and quoted).
pub fn select_sql(table: &str, filter: &str) -> String {
    let bare = table.rsplit('.').next().unwrap_or(table).trim_matches('"');
    respond(bare, &format!("SELECT {table}.* FROM {table} WHERE {filter}"))
}

/// `DELETE /rest/v1/fly_preview_apps?<filter>`.
pub fn delete_sql(filter: &str) -> String {
    delete_sql_in(TABLE, filter)
}

/// `DELETE /rest/v1/<table>?<filter>`.
pub fn delete_sql_in(table: &str, filter: &str) -> String {
    let q = qualified(table);
    respond(table, &format!("DELETE FROM {q} WHERE {filter} RETURNING {q}.*"))
}

/// `"column" = 'value'` as PostgREST writes an `eq` filter.
pub fn eq(column: &str, value: impl std::fmt::Display) -> String {
    eq_in(TABLE, column, value)
}

/// `"column" = 'value'` on `<table>`.
pub fn eq_in(table: &str, column: &str, value: impl std::fmt::Display) -> String {
    format!("{}.\"{column}\" = '{value}'", qualified(table))
}

impl PostgRest {
    /// Logs in as `authenticator` (PostgREST's login role) to the database of `url`.
    pub async fn connect(opts: sqlx::postgres::PgConnectOptions) -> PostgRest {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect_with(opts)
            .await
            .unwrap();
        let who: String =
            sqlx::query_scalar("SELECT current_user::text").fetch_one(&pool).await.unwrap();
        assert_eq!(who, "authenticator");
        PostgRest { pool }
    }

    /// One request: its own transaction, PostgREST's settings, the statement; the response
    /// body's rows (an error rolls the transaction back, as PostgREST does).
    pub async fn request(
        &self,
        jwt: Jwt,
        method: &str,
        sql: &str,
        body: Option<&Value>,
    ) -> Result<Vec<Value>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let (role, claims) = match jwt {
            Jwt::Anon => ("anon", serde_json::json!({"role": "anon"})),
            Jwt::User(sub) => (
                "authenticated",
                serde_json::json!({"sub": sub, "role": "authenticated", "aud": "authenticated"}),
            ),
        };
        sqlx::query(
            "select set_config('search_path', '\"public\", \"extensions\"', true), set_config('role', $1, true), \
             set_config('request.jwt.claims', $2, true), set_config('request.method', $3, true), \
             set_config('request.path', '/fly_preview_apps', true)",
        )
        .bind(role)
        .bind(claims.to_string())
        .bind(method)
        .execute(&mut *tx)
        .await?;
        let mut q = sqlx::query_as::<_, (i64, String)>(sqlx::AssertSqlSafe(sql.to_string()));
        if let Some(b) = body {
            q = q.bind(b.to_string());
        }
        let (_, body) = q.fetch_one(&mut *tx).await?;
        tx.commit().await?;
        let rows: Vec<Value> = serde_json::from_str(&body).unwrap();
        Ok(rows)
    }

    /// Runs `sql` inside a request without a body parameter (`GET`, `DELETE`).
    pub async fn call(&self, jwt: Jwt, method: &str, sql: &str) -> Result<Vec<Value>, sqlx::Error> {
        self.request(jwt, method, sql, None).await
    }
}
