//! SQL and the Rust vocabulary agree: every `status_reason` value any SQL writes or compares
//! (the functions in the database, the migration files, the store's named queries) parses
//! as a `Reason`, so the row's `status_reason` always decodes.

use std::collections::BTreeSet;
use std::path::Path;

use crate::support::*;
use sqlx::PgPool;

/// Sources that may write `status_reason`: every function body in the migrated database
/// (trigger functions included) and every `.sql` file of the migrations and the store.
async fn sql_sources(pool: &PgPool) -> Vec<(String, String)> {
    let mut sources: Vec<(String, String)> = sqlx::query_as(
        "SELECT p.oid::regprocedure::text, p.prosrc FROM pg_catalog.pg_proc p \
         WHERE p.prosrc ILIKE '%status_reason%'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for dir in ["migrations", "src/store/sql"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "sql") {
                let text = std::fs::read_to_string(&path).unwrap();
                sources.push((path.display().to_string(), text));
            }
        }
    }
    sources
}

#[sqlx::test]
async fn every_status_reason_in_sql_is_a_reason(pool: PgPool) {
    let sources = sql_sources(&pool).await;
    let functions = sources.iter().filter(|(name, _)| name.contains('(')).count();
    assert!(functions >= 3, "the request triggers write status_reason");
    let mut seen = BTreeSet::new();
    let mut unknown = Vec::new();
    for (name, text) in &sources {
        for value in status_reason_literals(text) {
            if value.parse::<Reason>().is_err() {
                unknown.push(format!("{name}: '{value}'"));
            }
            seen.insert(value);
        }
    }
    assert!(unknown.is_empty(), "status_reason values that are not a Reason: {unknown:#?}");
    // The extractor is not blind: it finds what the triggers and the quota query write.
    for r in [
        Reason::DeployRequested,
        Reason::RedeployRequested,
        Reason::TeardownRequested,
        Reason::SpecChanged,
        Reason::QuotaExceeded,
    ] {
        assert!(seen.contains(r.as_str()), "{r} not found in {seen:?}");
    }
}

#[test]
fn the_extractor_finds_every_assigned_or_compared_value() {
    let sql = "
        -- a comment with status_reason = 'NotCode'
        update public.fly_preview_apps set desired_state = 'stopped', status_reason = 'Bogus'
         where status = 'stopped';
        create function f() returns trigger language plpgsql as $$
        begin
          new.status_reason := case when new.desired_state = 'stopped' then 'A'
                                    when tg_op = 'INSERT' then case when true then 'B' end
                                    else 'C' end;
          if new.status_reason is not distinct from 'D' or 'E' = old.status_reason then
            new.status_reason := coalesce(old.status_reason, 'F');
          end if;
          perform 1 where r.status_reason in ('G', 'It''s') and status_reason <> $1
            and status_reason = any(array['H']);
          new.status_reason := null;
          return new;
        end $$;";
    let found: Vec<String> = status_reason_literals(sql);
    assert_eq!(found, ["Bogus", "A", "B", "C", "D", "E", "F", "G", "It's", "H"]);
    let bogus: Vec<&String> = found.iter().filter(|v| v.parse::<Reason>().is_err()).collect();
    assert_eq!(bogus.first().map(|s| s.as_str()), Some("Bogus"), "a bogus value is caught");
}

/// One token of SQL text: a word (identifiers and keywords, lower-cased, dotted names whole),
/// a string literal (unquoted), or a punctuation/operator.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Punct(&'static str),
}

/// Splits SQL (or PL/pgSQL) into tokens; `$$` quoting is transparent, comments dropped.
fn tokens(sql: &str) -> Vec<Tok> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '-' && next == Some('-') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '\'' {
            let mut s = String::new();
            i += 1;
            while i < chars.len() {
                if chars[i] == '\'' && chars.get(i + 1) == Some(&'\'') {
                    s.push('\'');
                    i += 2;
                } else if chars[i] == '\'' {
                    break;
                } else {
                    s.push(chars[i]);
                    i += 1;
                }
            }
            i += 1;
            out.push(Tok::Str(s));
        } else if c.is_alphanumeric() || c == '_' || c == '$' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '.' | '$'))
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect::<String>().to_lowercase();
            if word != "$$" {
                out.push(Tok::Word(word));
            }
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let punct = match two.as_str() {
                ":=" => Some(":="),
                "<>" => Some("<>"),
                "!=" => Some("!="),
                _ => None,
            };
            if let Some(p) = punct {
                out.push(Tok::Punct(p));
                i += 2;
                continue;
            }
            let one = match c {
                '=' => Some("="),
                '(' => Some("("),
                ')' => Some(")"),
                '[' => Some("["),
                ']' => Some("]"),
                ',' => Some(","),
                ';' => Some(";"),
                _ => None,
            };
            if let Some(p) = one {
                out.push(Tok::Punct(p));
            }
            i += 1;
        }
    }
    out
}

fn is_word(t: Option<&Tok>, w: &str) -> bool {
    matches!(t, Some(Tok::Word(x)) if x == w)
}

fn is_punct(t: Option<&Tok>, p: &str) -> bool {
    matches!(t, Some(Tok::Punct(x)) if *x == p)
}

/// `status_reason`, qualified or not (`new.status_reason`, `r.status_reason`).
fn is_column(t: Option<&Tok>) -> bool {
    matches!(t, Some(Tok::Word(w)) if w == "status_reason" || w.ends_with(".status_reason"))
}

/// The length of a comparison or assignment operator at `i` (0: none).
fn operator_at(toks: &[Tok], i: usize) -> usize {
    let t = toks.get(i);
    if ["=", ":=", "<>", "!="].iter().any(|p| is_punct(t, p)) {
        return 1;
    }
    if is_word(t, "is") {
        let not = usize::from(is_word(toks.get(i + 1), "not"));
        if is_word(toks.get(i + 1 + not), "distinct") && is_word(toks.get(i + 2 + not), "from") {
            return 3 + not;
        }
    }
    0
}

/// The index just past the bracket that closes the one opened at `open`.
fn closing(toks: &[Tok], open: usize) -> usize {
    let mut depth = 0;
    for (j, t) in toks.iter().enumerate().skip(open) {
        if is_punct(Some(t), "(") || is_punct(Some(t), "[") {
            depth += 1;
        } else if is_punct(Some(t), ")") || is_punct(Some(t), "]") {
            depth -= 1;
            if depth == 0 {
                return j + 1;
            }
        }
    }
    toks.len()
}

/// The values an expression starting at `i` can yield: a literal, each result of a `CASE`
/// (nested ones too), the arguments of `coalesce`/`nullif`, the elements of a list or array.
fn values_at(toks: &[Tok], i: usize, out: &mut Vec<String>) {
    match toks.get(i) {
        Some(Tok::Str(s)) => out.push(s.clone()),
        Some(Tok::Word(w)) if w == "case" => {
            let mut depth = 0;
            for j in i..toks.len() {
                if is_word(toks.get(j), "case") {
                    depth += 1;
                } else if is_word(toks.get(j), "end") {
                    depth -= 1;
                    if depth == 0 {
                        return;
                    }
                } else if depth == 1
                    && (is_word(toks.get(j), "then") || is_word(toks.get(j), "else"))
                {
                    values_at(toks, j + 1, out);
                }
            }
        }
        Some(Tok::Word(w))
            if ["coalesce", "nullif", "any", "array"].contains(&w.as_str())
                || w.ends_with(".coalesce") =>
        {
            values_at(toks, i + 1, out);
        }
        Some(Tok::Punct("(" | "[")) => {
            let end = closing(toks, i);
            let mut j = i + 1;
            while j < end.saturating_sub(1) {
                values_at(toks, j, out);
                // Skip to the next element at this depth.
                let mut depth = 0;
                while j < end.saturating_sub(1) {
                    let t = toks.get(j);
                    if is_punct(t, "(") || is_punct(t, "[") {
                        depth += 1;
                    } else if is_punct(t, ")") || is_punct(t, "]") {
                        depth -= 1;
                    } else if depth == 0 && is_punct(t, ",") {
                        break;
                    }
                    j += 1;
                }
                j += 1;
            }
        }
        _ => {}
    }
}

/// Every literal assigned to or compared with `status_reason` in `sql`, in order.
fn status_reason_literals(sql: &str) -> Vec<String> {
    let toks = tokens(sql);
    let mut out = Vec::new();
    for i in 0..toks.len() {
        if !is_column(toks.get(i)) {
            // `'X' = status_reason`: the literal is on the left.
            if matches!(toks.get(i), Some(Tok::Str(_))) {
                let n = operator_at(&toks, i + 1);
                if n > 0 && is_column(toks.get(i + 1 + n)) {
                    values_at(&toks, i, &mut out);
                }
            }
            continue;
        }
        let n = operator_at(&toks, i + 1);
        if n > 0 {
            values_at(&toks, i + 1 + n, &mut out);
        } else if is_word(toks.get(i + 1), "in") {
            values_at(&toks, i + 2, &mut out);
        } else if is_word(toks.get(i + 1), "not") && is_word(toks.get(i + 2), "in") {
            values_at(&toks, i + 3, &mut out);
        }
    }
    out
}
