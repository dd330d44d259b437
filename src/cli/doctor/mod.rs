//! `satellite doctor`: every check a technician would make at a broken
//! kiosk, each PASS, WARN or FAIL with one line of remedy. Its exit status
//! is the worst result (0, 1, 2).
//!
//! What the agent knows comes from its health document and store
//! statistics (the checks never ask the printer themselves); what only this
//! machine can say (the configuration file, the PC/SC stack, free disk
//! space) is checked here. Without a running agent the checks that need it
//! FAIL together with the "agent" check, saying so.

mod checks;

use super::agent::{Agent, CliError};
use super::output::{self, bad, exit, good, warn};
use serde::Serialize;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    Pass,
    Warn,
    Fail,
}

impl Verdict {
    fn exit(self) -> u8 {
        match self {
            Verdict::Pass => exit::OK,
            Verdict::Warn => exit::WARN,
            Verdict::Fail => exit::FAIL,
        }
    }

    fn painted(self) -> String {
        match self {
            Verdict::Pass => good("PASS"),
            Verdict::Warn => warn("WARN"),
            Verdict::Fail => bad("FAIL"),
        }
    }
}

/// One check's result. `id` is stable (scripts and support read it).
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub id: &'static str,
    pub title: &'static str,
    pub result: Verdict,
    /// What was found.
    pub detail: String,
    /// What to do (empty on PASS).
    pub remedy: String,
}

impl Check {
    pub fn pass(id: &'static str, title: &'static str, detail: impl Into<String>) -> Check {
        Check {
            id,
            title,
            result: Verdict::Pass,
            detail: detail.into(),
            remedy: String::new(),
        }
    }

    pub fn warn(
        id: &'static str,
        title: &'static str,
        detail: impl Into<String>,
        remedy: impl Into<String>,
    ) -> Check {
        Check {
            id,
            title,
            result: Verdict::Warn,
            detail: detail.into(),
            remedy: remedy.into(),
        }
    }

    pub fn fail(
        id: &'static str,
        title: &'static str,
        detail: impl Into<String>,
        remedy: impl Into<String>,
    ) -> Check {
        Check {
            id,
            title,
            result: Verdict::Fail,
            detail: detail.into(),
            remedy: remedy.into(),
        }
    }
}

/// Every check, in the order a technician reads them.
pub async fn all(agent: &Agent, config: &Path) -> Vec<Check> {
    checks::run(agent, config).await
}

/// The doctor's JSON: the checks and the worst result.
pub fn to_json(checks: &[Check]) -> serde_json::Value {
    let worst = checks
        .iter()
        .map(|c| c.result)
        .max()
        .unwrap_or(Verdict::Pass);
    serde_json::json!({ "result": worst, "checks": checks })
}

pub async fn run(agent: &Agent, config: &Path, json_out: bool) -> Result<u8, CliError> {
    let pb = output::spinner("checking", json_out);
    let checks = all(agent, config).await;
    pb.finish_and_clear();
    let worst = checks
        .iter()
        .map(|c| c.result)
        .max()
        .unwrap_or(Verdict::Pass);
    if json_out {
        output::json(&to_json(&checks));
        return Ok(worst.exit());
    }
    let rows = checks
        .iter()
        .map(|c| vec![c.result.painted(), c.title.to_string(), c.detail.clone()])
        .collect();
    output::line(output::table(&["RESULT", "CHECK", "FOUND"], rows));
    let todo: Vec<&Check> = checks
        .iter()
        .filter(|c| c.result != Verdict::Pass)
        .collect();
    if !todo.is_empty() {
        output::line("");
        output::line(output::bold("What to do"));
        for c in todo {
            output::line(format!(
                "  {} {}: {}",
                c.result.painted(),
                c.title,
                c.remedy
            ));
        }
    }
    Ok(worst.exit())
}
