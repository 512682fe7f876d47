//! `migrate --dry-run`: what `migrate` would do, found by reading only the catalog and the
//! migrations table. It takes no lock on any table the web app uses (not even the briefest), so
//! a web-app query never waits on it, however busy the tables are. The exact schema difference
//! comes from `migrate --rehearse` ([`super::rehearse`]), which applies the migrations and rolls
//! back, and so takes their locks.

use std::collections::BTreeSet;

use sqlx::postgres::PgPool;

use super::{LEGACY_MIGRATIONS_TABLE, LOCK_TIMEOUT, MIGRATIONS_TABLE, StoreError, pending};

/// The report of `migrate --dry-run`: the pending migrations and, for each, the tables its
/// statements change (each locked for a moment when `migrate` applies it). Reads the
/// migrations table (and `to_regclass`, which locks nothing); changes nothing.
pub async fn dry_run(pool: &PgPool) -> Result<String, StoreError> {
    let pending = pending(pool).await?;
    let mut out = String::from(
        "migrate --dry-run: read only (the catalog and the migrations table); nothing was \
         changed and no table was locked.\n",
    );
    if pending.is_empty() {
        out.push_str("All migrations are applied; `migrate` would change nothing.\n");
        return Ok(out);
    }
    let legacy: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(LEGACY_MIGRATIONS_TABLE)
        .fetch_one(pool)
        .await?;
    if legacy {
        out.push_str(&format!(
            "{LEGACY_MIGRATIONS_TABLE} would be moved to {MIGRATIONS_TABLE} (history kept).\n"
        ));
    }
    out.push_str(&format!("Pending migrations ({}):\n", pending.len()));
    for m in &pending {
        out.push_str(&format!("  {} {}\n", m.version, m.description));
        let tables: Vec<String> = tables_changed(m.sql.as_str()).into_iter().collect();
        if !tables.is_empty() {
            out.push_str(&format!("    changes: {}\n", tables.join(", ")));
        }
    }
    out.push_str(&format!(
        "`migrate` locks each table it changes for a moment, waiting at most {LOCK_TIMEOUT:?} for \
         a lock (then it rolls back and tries again). For the exact schema difference and the \
         backfilled rows, `migrate --rehearse` applies the migrations in a transaction and rolls \
         back (it takes their locks, waiting at most 100 ms for each).\n"
    ));
    Ok(out)
}

/// The tables a migration's statements change, as written (`public.t` or `t`): the targets of
/// `ALTER TABLE`, `LOCK TABLE`, `CREATE`/`DROP` `INDEX`/`TRIGGER`/`POLICY … ON`, and of
/// `UPDATE`/`INSERT INTO`/`DELETE FROM` statements. Function bodies are skipped (they run later,
/// not when the migration is applied); a `DO` block's body runs now and is read.
pub fn tables_changed(sql: &str) -> BTreeSet<String> {
    let text = without_function_bodies(&without_comments(sql)).to_lowercase();
    let spaced = text.replace(['(', ')', ','], " ").replace(';', " ; ");
    let tokens: Vec<&str> = spaced.split_whitespace().collect();
    let mut found = BTreeSet::new();
    let mut start = 0;
    for (i, t) in tokens.iter().enumerate() {
        if matches!(*t, ";" | "begin" | "then" | "else" | "loop") {
            start = i + 1;
            continue;
        }
        if i == start {
            let statement = &tokens[i..];
            let end = statement.iter().position(|t| *t == ";").unwrap_or(statement.len());
            if let Some(name) = target(&statement[..end]) {
                found.insert(name.trim_matches('"').to_string());
            }
        }
    }
    found
}

/// The table one statement (its tokens, lowercase) changes, if it changes one.
fn target<'a>(s: &[&'a str]) -> Option<&'a str> {
    let skip = |rest: &[&'a str]| {
        rest.iter().copied().find(|t| !matches!(*t, "if" | "exists" | "only" | "not"))
    };
    match s {
        ["alter" | "lock", "table", rest @ ..] => skip(rest),
        ["update", rest @ ..] => skip(rest),
        ["insert", "into", name, ..] | ["delete", "from", name, ..] => Some(name),
        ["create" | "drop", kind @ ..]
            if kind.iter().take(4).any(|k| matches!(*k, "index" | "trigger" | "policy")) =>
        {
            let on = s.iter().position(|t| *t == "on")?;
            skip(&s[on + 1..])
        }
        _ => None,
    }
}

fn without_comments(sql: &str) -> String {
    sql.lines().map(|l| l.split("--").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

/// The text with the bodies of `… AS $tag$ … $tag$` (function bodies) removed; other
/// dollar-quoted text (a `DO` block) is kept without its quotes.
fn without_function_bodies(sql: &str) -> String {
    let mut out = String::new();
    let mut rest = sql;
    while let Some((before, body, after)) = dollar_quoted(rest) {
        out.push_str(before);
        let is_body = before.trim_end().to_lowercase().ends_with("as");
        if !is_body {
            out.push_str(&format!(" {body} "));
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// The first dollar-quoted string of `s`: (text before, body, text after).
fn dollar_quoted(s: &str) -> Option<(&str, &str, &str)> {
    let mut from = 0;
    loop {
        let open = from + s[from..].find('$')?;
        let len = s[open + 1..].find('$')?;
        let tag = &s[open + 1..open + 1 + len];
        if !tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            from = open + 1;
            continue;
        }
        let delim = &s[open..open + len + 2];
        let body_start = open + delim.len();
        let close = body_start + s[body_start..].find(delim)?;
        return Some((&s[..open], &s[body_start..close], &s[close + delim.len()..]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(sql: &str) -> Vec<String> {
        tables_changed(sql).into_iter().collect()
    }

    #[test]
    fn ddl_targets_are_found_and_function_bodies_are_not() {
        let sql = "\
-- alter table public.commented_out add column x int;
create or replace function public.f() returns trigger language plpgsql as $$
begin
  update public.inside_a_function set x = 1;
  return new;
end $$;
alter table if exists only public.apps add column y int;
create unique index if not exists i on public.apps_idx (y);
create or replace trigger t before update of y on public.apps_trg for each row execute function public.f();
drop policy if exists \"p\" on public.apps_pol;
insert into fly_preview_controller.settings (id) values (1) on conflict (id) do nothing;
do $body$
begin
  alter table public.apps_do validate constraint c;
end $body$;
comment on table public.commented is 'x';
grant select on public.granted to anon;";
        assert_eq!(
            names(sql),
            [
                "fly_preview_controller.settings",
                "public.apps",
                "public.apps_do",
                "public.apps_idx",
                "public.apps_pol",
                "public.apps_trg",
            ]
        );
    }

    #[test]
    fn a_migration_of_functions_only_changes_no_table() {
        let sql = "create or replace function public.g() returns int language sql as $f$ \
                   select 1 from public.t; delete from public.t $f$;\n\
                   revoke execute on function public.g() from anon;";
        assert!(names(sql).is_empty(), "{:?}", names(sql));
    }

    #[test]
    fn the_shipped_migrations_change_the_tables_they_say() {
        let bounds = include_str!("../../../migrations/20261208000300_bounds_on_write.sql");
        assert_eq!(names(bounds), ["public.fly_preview_apps"]);
    }
}
