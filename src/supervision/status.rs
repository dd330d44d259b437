//! `STATUS=` lines: one short sentence of what the agent does, for
//! `systemctl status`. Built from the engine's published state, the
//! printer's published view and the queue's length (never by asking the
//! printer); sent when the sentence changes, at most once per [`MIN_GAP`].

use super::{notify, NotifyState};
use crate::codes::Fault;
use crate::engine::state::{Activity, EngineState};
use crate::engine::Engine;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// At most one line per this: a flapping printer does not flood systemd.
pub const MIN_GAP: Duration = Duration::from_millis(500);
/// How soon the queue is read again after the store could not say.
const REFRESH: Duration = Duration::from_secs(5);

/// The sentence for a state. `printer` is why the printer is not ready
/// (`None`: ready); `queue` the cards waiting, when the store could say.
pub fn line(
    state: &EngineState,
    printer: Option<&Fault>,
    queue: Option<usize>,
    stopping: bool,
) -> String {
    let printer = match printer {
        None => "printer ready".to_string(),
        Some(f) => format!("printer not ready ({}: {})", f.code, f.description),
    };
    let queue = match queue {
        Some(n) => format!("queue {n}"),
        None => "queue unknown".to_string(),
    };
    let what = match &state.activity {
        Activity::Starting => format!("starting; {printer}; {queue}"),
        Activity::Idle => format!("idle; {printer}; {queue}"),
        Activity::Producing { card, step } => format!(
            "producing card {card}: step {}; {queue}",
            step.as_deref().unwrap_or("start")
        ),
        Activity::WaitingForPrinter { code, reason } => {
            format!("waiting for the printer ({code}: {reason}); {queue}")
        }
        Activity::CardInDoubt {
            card,
            code,
            reason,
            technician,
            ..
        } => format!(
            "card in doubt: {card} ({code}: {reason}){}; {queue}",
            if *technician {
                "; a technician must resolve it"
            } else {
                ""
            }
        ),
        Activity::CheckingStore { reason } => format!("checking the store: {reason}; {queue}"),
        Activity::Maintenance { operation } => format!("maintenance: {operation}; {queue}"),
        Activity::Stopping => "stopped: the card in production, if any, is decided".to_string(),
    };
    if stopping && state.activity != Activity::Stopping {
        format!("stopping (finishing the card in production); {what}")
    } else {
        what
    }
}

/// Sends a line whenever the sentence changes, until `stop`. `stopping`
/// says a stop was asked for (the card in production still finishes).
///
/// It wakes only for what can change the sentence: the engine's state, the
/// printer's readiness (not each probe's fresh time stamp), a store commit
/// (the queue), a new printer handle, the stop. The queue is read from the
/// store only after a commit, so an idle agent costs no hand-off to the
/// blocking pool per probe (`satellite bench --idle`).
pub async fn run(engine: Engine, stopping: CancellationToken, stop: CancellationToken) {
    let mut state = engine.state();
    let mut printers = engine.printer_changes();
    let mut written = engine.store().written();
    let mut last = String::new();
    let mut queue = None;
    let mut queue_stale = true;
    loop {
        let snapshot = state.borrow_and_update().clone();
        let mut view = engine.printer().view();
        let not_ready = view.borrow_and_update().not_ready();
        if queue_stale {
            written.borrow_and_update();
            let store = engine.store();
            queue = tokio::task::spawn_blocking(move || store.queued().map(|q| q.len()).ok())
                .await
                .ok()
                .flatten();
            queue_stale = false;
        }
        let text = line(
            &snapshot,
            not_ready.as_ref(),
            queue,
            stopping.is_cancelled(),
        );
        if text != last {
            notify(&[NotifyState::Status(&text)]);
            last = text;
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = state.changed() => {}
            _ = view.wait_for(|v| v.not_ready() != not_ready) => {}
            _ = printers.changed() => {}
            _ = written.changed() => queue_stale = true,
            _ = stopping.cancelled(), if !stopping.is_cancelled() => {}
            // A store that could not be read is asked again.
            _ = tokio::time::sleep(REFRESH), if queue.is_none() => queue_stale = true,
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(MIN_GAP) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes::ErrorCode;

    #[test]
    fn each_state_reads_as_one_sentence() {
        let idle = EngineState::new(Activity::Idle);
        assert_eq!(
            line(&idle, None, Some(0), false),
            "idle; printer ready; queue 0"
        );
        let cover = Fault::new(ErrorCode::PRT_COVER_OPEN, "cover", "the cover is open");
        assert_eq!(
            line(&idle, Some(&cover), None, false),
            "idle; printer not ready (PRT_COVER_OPEN: the cover is open); queue unknown"
        );
        let producing = EngineState::new(Activity::Producing {
            card: "tok-1".into(),
            step: Some("print".into()),
        });
        assert_eq!(
            line(&producing, None, Some(2), false),
            "producing card tok-1: step print; queue 2"
        );
        assert_eq!(
            line(&producing, None, Some(2), true),
            "stopping (finishing the card in production); producing card tok-1: step print; queue 2"
        );
        let doubt = EngineState::new(Activity::CardInDoubt {
            card: "tok-2".into(),
            step: Some("present".into()),
            code: ErrorCode::PRT_TIMEOUT,
            reason: "no answer".into(),
            technician: true,
        });
        assert_eq!(
            line(&doubt, None, Some(1), false),
            "card in doubt: tok-2 (PRT_TIMEOUT: no answer); a technician must resolve it; queue 1"
        );
    }
}
