//! A technician's printer operations through the running agent: cleaning,
//! a test card, a software reset, one raw command. The agent owns the
//! printer's port, so these go through it: each waits for the card in
//! production to finish (the printer's turn, see the production loop), runs
//! alone, is published as the engine's activity, and gives the printer back.

use super::state::Activity;
use super::Engine;
use crate::codes::{ErrorCode, Fault};
use dialect::ops::Op;
use serde::Serialize;
use std::time::{Duration, Instant};

/// What a technician can ask of the printer through the agent.
#[derive(Debug, Clone)]
pub enum Operation {
    Clean,
    TestCard,
    Reset,
    /// One command as typed (`Rse;o`); its reply is shown, never interpreted.
    Raw(dialect::Command),
}

impl Operation {
    pub fn name(&self) -> String {
        match self {
            Operation::Clean => "clean".into(),
            Operation::TestCard => "test-card".into(),
            Operation::Reset => "reset".into(),
            Operation::Raw(c) => format!("raw {}", c.display_redacted()),
        }
    }
}

/// How an operation went.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Done {
    pub operation: String,
    /// The printer's answer to a raw command (masked where it holds digits
    /// that look like a card number).
    pub reply: Option<String>,
    /// What the printer's refusal means, when it refused.
    pub fault: Option<Fault>,
    pub seconds: f64,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum MaintenanceError {
    /// The printer cannot be given to the technician now (a card is in
    /// production, or in doubt, or the agent is stopping).
    #[error("{0}")]
    Busy(String),
    /// The link failed under the operation.
    #[error("{}: {}", .0.code, .0.description)]
    Link(Fault),
}

/// How long an operation waits for a printer link that is coming back.
const LINK_WAIT: Duration = Duration::from_secs(10);

impl Engine {
    /// Runs `op` between cards, waiting at most `wait` for the card in
    /// production to finish.
    pub async fn maintenance(
        &self,
        op: Operation,
        wait: Duration,
    ) -> Result<Done, MaintenanceError> {
        if let Some(why) = self.state().borrow().blocks_production() {
            return Err(MaintenanceError::Busy(format!(
                "the printer cannot be used now: {why}"
            )));
        }
        let Ok(turn) = tokio::time::timeout(wait, self.inner.printer_turn.lock()).await else {
            return Err(MaintenanceError::Busy(format!(
                "a card is in production and did not finish within {} s: try again when the agent is idle",
                wait.as_secs()
            )));
        };
        let name = op.name();
        tracing::info!(operation = %name, "technician's printer operation");
        self.set_activity(Activity::Maintenance {
            operation: name.clone(),
        });
        let started = Instant::now();
        let printer = self.printer();
        // A link coming back (after a reset, a replug) is waited for, not
        // reported as a failure; a printer gone for longer is.
        let _ = tokio::time::timeout(LINK_WAIT, printer.wait_connected()).await;
        let outcome = match op {
            Operation::Clean => printer.run(Op::Clean).await.map(|_| (None, None)),
            Operation::TestCard => printer.run(Op::TestCard).await.map(|_| (None, None)),
            Operation::Reset => match printer.run(Op::SoftReset).await {
                Ok(_) => {
                    // The printer restarts and loses its settings: let the
                    // driver notice and set it up again before the reset
                    // counts as done, so the next command finds it ready.
                    let _ = printer.refresh(false).await;
                    let _ = tokio::time::timeout(LINK_WAIT, printer.wait_connected()).await;
                    Ok((None, None))
                }
                Err(f) => Err(f),
            },
            Operation::Raw(cmd) => printer
                .with_conn(move |c| Box::pin(async move { c.raw(cmd).await.map(Ok::<_, Fault>) }))
                .await
                .map(|(reply, fault)| (Some(dialect::redact::mask_text(&reply)), fault)),
        };
        // The production loop publishes what it does next.
        self.set_activity(Activity::Idle);
        drop(turn);
        self.inner.wake.notify_one();
        printer.refresh_soon();
        let seconds = started.elapsed().as_secs_f64();
        match outcome {
            Ok((reply, fault)) => Ok(Done {
                operation: name,
                reply,
                fault,
                seconds,
            }),
            // A refusal of the printer is an answer, not a failure of the call.
            Err(f)
                if !matches!(
                    f.code,
                    ErrorCode::PRT_NOT_REACHABLE | ErrorCode::PRT_TIMEOUT
                ) =>
            {
                Ok(Done {
                    operation: name,
                    reply: None,
                    fault: Some(f),
                    seconds,
                })
            }
            Err(f) => Err(MaintenanceError::Link(f)),
        }
    }
}
