//! A preview's environment variables as the web app wrote them (`public.fly_preview_env`,
//! secret values from `fly_preview_controller.env_secrets`). Values are [`Secret`]s: their
//! `Debug` and `Display` print `***`, so a variable never reaches a log by accident.

use uuid::Uuid;

use super::{Store, StoreError, named_query};
use crate::fly::Secret;

/// One variable of a preview.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvVar {
    pub name: String,
    pub value: Secret,
    /// Delivered as a Fly app secret (never in the machine config) when true.
    pub secret: bool,
}

impl Store {
    /// The variables of the preview `(user_id, project_id)`, by name.
    pub async fn preview_env(
        &self,
        user_id: Uuid,
        project_id: &str,
    ) -> Result<Vec<EnvVar>, StoreError> {
        let rows: Vec<(String, String, bool)> = sqlx::query_as(named_query!("env/read"))
            .bind(user_id)
            .bind(project_id)
            .fetch_all(self.pool())
            .await?;
        Ok(rows
            .into_iter()
            .map(|(name, value, secret)| EnvVar { name, value: Secret::new(value), secret })
            .collect())
    }
}
