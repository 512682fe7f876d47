//! Delivering a preview's variables to its machine. Secret ones become Fly app secrets of the
//! preview's app (Fly injects them into the machine's environment at boot; they are never in
//! the machine config), plain ones go into the config's `env` beside the runner's inputs
//! (which win: the database refuses names that shadow them). A variable the web app removed
//! is unset on Fly. The machine is then created or updated with `min_secrets_version`, so it
//! boots with exactly this change.
//!
//! # Guarantees
//! A preview that never had a secret costs no secrets call; values are [`Secret`]s end to end
//! (never formatted into a log, an error or a row).

use std::collections::BTreeMap;

use crate::fly::{MachineConfig, Secret};
use crate::preview::ctx::Ctx;
use crate::preview::error::ReconcileError;
use crate::store::{EnvVar, PreviewRow};

/// What the machine about to be created or updated gets.
#[derive(Debug, Default)]
pub(crate) struct Delivery {
    /// Plain variables for the config's `env`.
    pub plain: BTreeMap<String, String>,
    /// The secrets version the machine must boot with, when secrets changed.
    pub min_secrets_version: Option<u64>,
}

impl Delivery {
    /// Adds the plain variables to `config.env`; the runner's own inputs are kept.
    pub fn merge_into(&self, config: &mut MachineConfig) {
        for (k, v) in &self.plain {
            config.env.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
}

/// The secrets update that makes the app's secrets exactly `wanted`: every wanted value, and
/// `None` (unset) for each name on Fly that is no longer wanted.
fn secrets_change(
    wanted: &BTreeMap<String, Secret>,
    on_fly: &[String],
) -> BTreeMap<String, Option<Secret>> {
    let mut change: BTreeMap<String, Option<Secret>> =
        wanted.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect();
    for name in on_fly.iter().filter(|n| !wanted.contains_key(*n)) {
        change.insert(name.clone(), None);
    }
    change
}

fn split(vars: Vec<EnvVar>) -> (BTreeMap<String, String>, BTreeMap<String, Secret>) {
    let (mut plain, mut secrets) = (BTreeMap::new(), BTreeMap::new());
    for v in vars {
        if v.secret {
            secrets.insert(v.name, v.value);
        } else {
            plain.insert(v.name, v.value.expose().to_owned());
        }
    }
    (plain, secrets)
}

/// Reads the row's variables and brings the app's secrets in line. `may_have_secrets`: the
/// app may hold secrets from an earlier deploy (otherwise, with no secret wanted, nothing is
/// asked of Fly).
pub(crate) async fn deliver(
    ctx: &Ctx,
    row: &PreviewRow,
    may_have_secrets: bool,
) -> Result<Delivery, ReconcileError> {
    let vars = ctx.store.preview_env(row.user_id, &row.project_id).await?;
    let (plain, wanted) = split(vars);
    if wanted.is_empty() && !may_have_secrets {
        return Ok(Delivery { plain, min_secrets_version: None });
    }
    let on_fly = ctx.fly.list_secret_names(&row.fly_app_name).await?;
    let change = secrets_change(&wanted, &on_fly);
    if change.is_empty() {
        return Ok(Delivery { plain, min_secrets_version: None });
    }
    let version = ctx.fly.update_secrets(&row.fly_app_name, &change).await?;
    Ok(Delivery { plain, min_secrets_version: Some(version) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(name: &str, value: &str, secret: bool) -> EnvVar {
        EnvVar { name: name.into(), value: Secret::new(value), secret }
    }

    #[test]
    fn secrets_are_set_and_removed_ones_unset() {
        let (plain, wanted) =
            split(vec![var("API_URL", "https://x", false), var("GIT_TOKEN", "g", true)]);
        assert_eq!(plain, BTreeMap::from([("API_URL".to_owned(), "https://x".to_owned())]));
        let change = secrets_change(&wanted, &["GIT_TOKEN".into(), "OLD".into()]);
        let shown: Vec<(&str, Option<&str>)> =
            change.iter().map(|(k, v)| (k.as_str(), v.as_ref().map(Secret::expose))).collect();
        assert_eq!(shown, [("GIT_TOKEN", Some("g")), ("OLD", None)]);
        assert!(secrets_change(&BTreeMap::new(), &[]).is_empty());
    }

    #[test]
    fn the_runners_inputs_win_over_a_plain_variable() {
        let mut config = MachineConfig::default();
        config.env.insert("PORT".into(), "3000".into());
        let d = Delivery {
            plain: BTreeMap::from([("PORT".into(), "1".into()), ("A".into(), "b".into())]),
            min_secrets_version: None,
        };
        d.merge_into(&mut config);
        assert_eq!(config.env.get("PORT").map(String::as_str), Some("3000"));
        assert_eq!(config.env.get("A").map(String::as_str), Some("b"));
    }
}
