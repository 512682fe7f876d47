//! App secrets: `GET /apps/{app}/secrets` (names and digests; Fly never returns values) and
//! `POST /apps/{app}/secrets` (`{"values": {"NAME": "value", "GONE": null}}`: one change, one
//! new secrets version). A machine reads its app's secrets when it boots, so a machine created
//! or updated with `min_secrets_version` set to the returned version sees the change.
//!
//! Both are retried like other idempotent calls: sending the same values twice leaves the
//! same secrets. The request body is never logged (the transport logs actions and errors only).

use std::collections::BTreeMap;

use reqwest::Method;
use serde::Deserialize;

use super::client::FlyClient;
use super::lenient::{nullable, string};
use super::transport::{Action, Request};
use super::{ErrorInfo, FlyError, Secret};

#[derive(Deserialize, Default)]
#[serde(default)]
struct SecretName {
    #[serde(deserialize_with = "string")]
    name: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SecretsEnvelope {
    #[serde(deserialize_with = "nullable")]
    secrets: Vec<SecretName>,
    version: Option<u64>,
}

/// The JSON body of an update: each name to its value, or `null` to unset it.
fn update_body(values: &BTreeMap<String, Option<Secret>>) -> serde_json::Value {
    let values: serde_json::Map<String, serde_json::Value> = values
        .iter()
        .map(|(k, v)| {
            (k.clone(), v.as_ref().map_or(serde_json::Value::Null, |s| s.expose().into()))
        })
        .collect();
    serde_json::json!({ "values": values })
}

impl FlyClient {
    /// The names of `app`'s secrets.
    pub async fn list_secret_names(&self, app: &str) -> Result<Vec<String>, FlyError> {
        let req = Request::new(Action::ListSecrets, Method::GET, &["apps", app, "secrets"], app);
        let page: SecretsEnvelope = self.transport().send(&req).await?.json("secrets")?;
        Ok(page.secrets.into_iter().map(|s| s.name).filter(|n| !n.is_empty()).collect())
    }

    /// Sets and unsets `app`'s secrets in one change; returns the new secrets version.
    pub async fn update_secrets(
        &self,
        app: &str,
        values: &BTreeMap<String, Option<Secret>>,
    ) -> Result<u64, FlyError> {
        let path = ["apps", app, "secrets"];
        let req = Request::new(Action::UpdateSecrets, Method::POST, &path, app)
            .json(&update_body(values))?;
        let resp = self.transport().send(&req).await?;
        let page: SecretsEnvelope = resp.json("secrets update")?;
        page.version.ok_or_else(|| {
            FlyError::Decode(ErrorInfo {
                status: Some(resp.status),
                request_id: resp.request_id.clone(),
                message: "secrets update answered without a version".into(),
                ..ErrorInfo::default()
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_update_body_sets_and_unsets() {
        let values = BTreeMap::from([
            ("GIT_TOKEN".to_owned(), Some(Secret::new("ghp_x"))),
            ("OLD".to_owned(), None),
        ]);
        assert_eq!(update_body(&values), json!({"values": {"GIT_TOKEN": "ghp_x", "OLD": null}}));
        let page: SecretsEnvelope =
            serde_json::from_str(r#"{"secrets":null,"version":3,"Version":3}"#).unwrap();
        assert_eq!((page.secrets.len(), page.version), (0, Some(3)));
    }
}
