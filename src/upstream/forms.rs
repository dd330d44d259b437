//! Placeholder until the forms land.
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Form {
    #[default]
    ProductionStatus,
    D1Operation,
}

pub fn envelope(_job: &crate::store::Job, event: &crate::store::Event) -> serde_json::Value {
    serde_json::json!({ "production": event })
}

pub fn webhook_body(_f: Form, _job: &crate::store::Job, event: &crate::store::Event) -> serde_json::Value {
    serde_json::json!({ "data": event })
}
