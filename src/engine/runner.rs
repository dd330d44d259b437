//! The production loop: one card at a time, each physical step journaled in
//! the store (intent before, outcome after).
//!
//! One rule for the live path and for recovery after a restart: when the
//! outcome of a step or of a reject is not certain (the link failed, the
//! store could not write), the card is in doubt. Its intent stays open in
//! the journal, exactly as a crash would leave it; nothing else is produced;
//! and as soon as the printer answers (and the store writes) again, the
//! card is located and [`recovery::decide`] settles it. The final status is
//! written once, after the card's place is known. A reject is checked, not
//! assumed; one the printer refuses leaves the card for a technician.

use super::plan::{plan, Needs, Step};
use super::progress;
use super::recovery::{self, Recovery};
use super::state::{self, Activity};
use super::{Engine, Resolution};
use crate::codes::{ErrorCode, Fault};
use crate::printer::steps::{CardWhere, TakeEnd, Verdict};
use crate::request::CardData;
use crate::store::{Job, Phase, Status, StoreError};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long to wait before looking again at a printer that is not ready.
const NOT_READY_PAUSE: Duration = Duration::from_secs(1);
/// Between attempts to settle a card in doubt.
const DOUBT_PAUSE: Duration = Duration::from_millis(200);
/// The longest idle wait: the queue is read again after it even if no
/// submission woke the loop (each submission, reload, maintenance end and
/// printer change does). A safety net only: at 5 s its store read was a
/// hand-off to the blocking pool and back, a few wake-ups each time, for
/// nothing (`satellite bench --idle`). The watchdog counts the wait as kept
/// progress (the loop waits by choice).
const IDLE_WAIT: Duration = Duration::from_secs(300);
/// Reopening a store that cannot be written: the first retry after this,
/// each next one after twice the last, up to [`REOPEN_MAX`]. A store back
/// within seconds is found within a fraction of that; one down for hours
/// costs a reopen (and its `quick_check`) every few seconds, no more.
const REOPEN_FIRST: Duration = Duration::from_millis(200);
const REOPEN_MAX: Duration = Duration::from_secs(5);
/// How often the loop says it is still waiting for a technician.
const TECHNICIAN_TICK: Duration = Duration::from_secs(10);

/// How a card's steps ended.
enum Ended {
    /// The outcome is known: produced, or failed with the card's place known.
    Certain(Result<(), Fault>),
    /// The card is in doubt; the fault is the first cause.
    Doubt(Fault),
    /// The card is inside and the printer refused to reject it.
    Stuck { cause: Fault, reject: Fault },
}

/// One journaled step.
enum Journaled {
    Done,
    /// The printer refused; the outcome is journaled.
    Failed(Fault),
    /// The step may or may not have happened, or the journal could not say.
    Doubt(Fault),
}

/// Where a reject left the card.
enum RejectEnd {
    InRejectBox,
    /// It left through the bezel before the reject reached it.
    Taken,
    /// No card in the printer to reject, and none seen leaving.
    Gone,
    /// The printer refused (or did not move the card): still inside.
    Refused(Fault),
    Doubt(Fault),
}

impl Engine {
    /// Recovers, then produces queued cards until `shutdown`. A card in
    /// production is finished before the loop ends.
    pub async fn run(&self, shutdown: CancellationToken) {
        // Stopping also ends retries that could otherwise wait forever.
        let stop = self.inner.stopping.clone();
        let forward = shutdown.clone();
        tokio::spawn(async move {
            forward.cancelled().await;
            stop.cancel();
        });
        self.set_activity(Activity::Starting);
        // Deferred card data is fetched beside the loop, while the cards
        // wait READY: a card is eligible once its data is in hand.
        let mut fetcher = self.spawn_fetcher(&shutdown);
        self.recover(&shutdown).await;
        let mut held = super::next_card::Held::new();
        while !shutdown.is_cancelled() {
            if fetcher.is_finished() && !shutdown.is_cancelled() {
                tracing::error!("the task fetching deferred card data ended: started again");
                fetcher = self.spawn_fetcher(&shutdown);
            }
            let t = self.link_timeouts();
            self.promise("loop turn", progress::turn(&t));
            if self.link_pending() {
                // A reload changed the link: between cards, and not under
                // a technician's operation.
                self.promise("maintenance", progress::maintenance(&t));
                let _turn = self.inner.printer_turn.lock().await;
                self.apply_link().await;
                continue;
            }
            if self.inner.store_suspect.load(Ordering::SeqCst) {
                self.check_store(&shutdown).await;
                continue;
            }
            if self.inner.printer_turn.try_lock().is_err() {
                // A technician's operation holds the printer (and publishes
                // its own activity): wait for it to end.
                self.promise("maintenance", progress::maintenance(&t));
                self.wait_turn(&shutdown).await;
                continue;
            }
            // Check before spending a blank card: the printer's state and
            // what the card needs (its feeder, its ribbon panels), read now;
            // nothing queued (or a queue that cannot be read) is idle.
            let next = self.next_card(&mut held).await;
            if matches!(next, Ok(None)) {
                self.set_activity(Activity::Idle);
                self.promise("idle", IDLE_WAIT + progress::turn(&t));
                // Idle: fold the WAL into the database so that erased card
                // data does not linger in the log. Once it is empty, there
                // is nothing to fold: no hand-off to the blocking pool every
                // 5 s (`satellite bench --idle`).
                if self.inner.store.wal_pending() {
                    if let Err(e) = self.db(|s| s.checkpoint()).await {
                        tracing::warn!(error = %e, "WAL checkpoint failed");
                    }
                }
                tokio::select! {
                    _ = self.inner.wake.notified() => {}
                    _ = shutdown.cancelled() => {}
                    _ = tokio::time::sleep(IDLE_WAIT) => {}
                }
                continue;
            }
            let job = match next {
                Ok(Some(job)) => job,
                Ok(None) => continue,
                Err(f) => {
                    let waiting = Activity::WaitingForPrinter {
                        code: f.code,
                        reason: f.description.clone(),
                    };
                    if self.inner.state.borrow().activity != waiting {
                        tracing::warn!(error_code = %f.code, reason = %f.reason, description = %f.description, "printer not ready; cards wait");
                    }
                    self.set_activity(waiting);
                    self.promise(
                        "waiting for the printer",
                        NOT_READY_PAUSE + progress::turn(&t),
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(NOT_READY_PAUSE) => {}
                        _ = shutdown.cancelled() => {}
                    }
                    continue;
                }
            };
            if matches!(
                self.inner.state.borrow().activity,
                Activity::WaitingForPrinter { .. }
            ) {
                tracing::info!("printer ready again");
            }
            // A technician's operation may hold the printer: the card waits
            // for it (and the queue is read again after, the card may be gone).
            let Ok(_turn) = self.inner.printer_turn.try_lock() else {
                self.promise("maintenance", progress::maintenance(&t));
                self.wait_turn(&shutdown).await;
                continue;
            };
            self.produce(job, &shutdown).await;
        }
        self.set_activity(Activity::Stopping);
        // It ends on `shutdown` (a call under way is dropped; the card
        // stays READY).
        let _ = fetcher.await;
    }

    fn spawn_fetcher(&self, shutdown: &CancellationToken) -> tokio::task::JoinHandle<()> {
        let (engine, shutdown) = (self.clone(), shutdown.clone());
        tokio::spawn(async move { engine.fetch_deferred(shutdown).await })
    }

    /// Waits until a technician's operation gives the printer back.
    async fn wait_turn(&self, shutdown: &CancellationToken) {
        tokio::select! {
            _ = self.inner.printer_turn.lock() => {}
            _ = shutdown.cancelled() => {}
        }
    }

    pub(super) fn set_activity(&self, a: Activity) {
        state::set(&self.inner.state, a);
    }

    /// The loop will be heard from again within `within` (the watchdog's
    /// budget, `progress.rs`).
    fn promise(&self, what: &'static str, within: Duration) {
        self.inner.progress.promise(what, within);
    }

    /// After a commit whose outcome is unknown, or a store that could not
    /// be written: reopen the store (read-write, and a write through it
    /// committed) and read it before anything more is accepted or produced.
    /// Retried with back-off for as long as it takes: no restart needed.
    async fn check_store(&self, shutdown: &CancellationToken) {
        self.set_activity(Activity::CheckingStore {
            reason: "a write failed or its outcome is unknown".into(),
        });
        let mut pause = REOPEN_FIRST;
        loop {
            self.promise(
                "checking the store",
                pause + progress::turn(&self.link_timeouts()),
            );
            match self.db(|s| s.reopen()).await {
                Ok(()) => break,
                Err(e) => {
                    self.store_trouble("reopening the job store", &e);
                    if matches!(e, StoreError::Unwritable(_)) {
                        self.set_activity(Activity::CheckingStore {
                            reason: "the job store cannot be written (a read-only file system, \
                                     a full disk or another program's lock); retrying"
                                .into(),
                        });
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = shutdown.cancelled() => return,
                    }
                    pause = (pause * 2).min(REOPEN_MAX);
                }
            }
        }
        self.store_ok();
        tracing::info!("job store reopened and read back");
        // A card started by the uncertain write is settled like after a
        // restart, before anything more is accepted.
        self.recover(shutdown).await;
        self.inner.store_suspect.store(false, Ordering::SeqCst);
    }

    /// One card, from READY to a final state.
    async fn produce(&self, job: Job, shutdown: &CancellationToken) {
        let token = job.meta.card_token.clone();
        let span = tracing::info_span!("card", card_token = %token, pan = %job.meta.pan_masked);
        tracing::Instrument::instrument(self.produce_in_span(job, token, shutdown), span).await
    }

    async fn produce_in_span(&self, job: Job, token: String, shutdown: &CancellationToken) {
        let t = token.clone();
        if let Err(e) = self.db(move |s| s.start(&t)).await {
            self.store_trouble("starting a card", &e);
            self.store_failed(&e);
            // Do not spin on a store that refuses writes.
            tokio::time::sleep(NOT_READY_PAUSE).await;
            return;
        }
        tracing::info!(card_type = %job.meta.card_type, "production started");
        self.set_activity(Activity::Producing {
            card: token.clone(),
            step: None,
        });
        self.inner.producing.store(true, Ordering::Relaxed);
        let ended = self.steps(&job).await;
        self.inner.producing.store(false, Ordering::Relaxed);
        *self.inner.card_until.lock().expect("card_until lock") = None;
        // A verdict nobody gave (the customer took the card first) is dropped.
        self.inner
            .verdicts
            .lock()
            .expect("verdicts lock")
            .remove(&token);
        match ended {
            Ended::Certain(Ok(())) => self.finish(&token, Status::Produced, None).await,
            Ended::Certain(Err(f)) => self.finish(&token, Status::ProductionError, Some(f)).await,
            Ended::Doubt(cause) => {
                tracing::error!(error_code = %cause.code, error = %cause.description, "the card is in doubt: production stops until its place is known");
                self.settle(&token, Some(cause), None, shutdown).await
            }
            Ended::Stuck { cause, reject } => {
                let why = format!("production failed ({}: {})", cause.code, cause.description);
                let stuck = refused_reject(&why, &reject);
                self.settle(&token, Some(cause), Some(stuck), shutdown)
                    .await
            }
        }
        self.printer().refresh_soon();
        // The card's end is recorded: nothing is in production until the
        // loop starts the next one.
        self.set_activity(Activity::Idle);
    }

    /// Marks the store as suspect when a write's outcome is unknown, or the
    /// store cannot be written: it is reopened (and a write through it
    /// checked) before anything more is done.
    pub(super) fn store_failed(&self, e: &StoreError) {
        if matches!(e, StoreError::Uncertain(_) | StoreError::Unwritable(_)) {
            self.inner.store_suspect.store(true, Ordering::SeqCst);
        }
    }

    /// Settles a card in doubt: waits for the printer, locates the card and
    /// decides as recovery does. `stuck` says why only a technician can
    /// settle it (a reject the printer refused): the card waits for one first.
    async fn settle(
        &self,
        token: &str,
        cause: Option<Fault>,
        mut stuck: Option<String>,
        shutdown: &CancellationToken,
    ) {
        let code = cause.as_ref().map_or(ErrorCode::UNKNOWN_ERROR, |f| f.code);
        // A printer that shows it restarted after a link fault (power cycle)
        // explains the fault: the card's description says so.
        let restarts_before = self.printer().restarts();
        let link_fault = cause
            .as_ref()
            .is_some_and(crate::printer::faults::is_link_fault);
        let mut restart_checked = false;
        // How a technician's description names the card: token, masked PAN.
        let t = token.to_string();
        let pan_masked = match self.db(move |s| s.job(&t)).await {
            Ok(Some(job)) => job.meta.pan_masked,
            _ => "unknown".to_string(),
        };
        let mut reopen_pause = REOPEN_FIRST;
        loop {
            let restarted = self.printer().restarts() > restarts_before;
            let cause = match &cause {
                Some(f) if restarted => Some(crate::printer::faults::restarted_meanwhile(f)),
                c => c.clone(),
            };
            let why = match &cause {
                Some(f) => format!("production was interrupted ({}: {})", f.code, f.description),
                None => "the agent restarted".to_string(),
            };
            // Each attempt reads the store and asks the printer, each bounded.
            self.promise(
                "settling a card in doubt",
                progress::turn(&self.link_timeouts()) + Duration::from_secs(5) + reopen_pause,
            );
            if shutdown.is_cancelled() {
                tracing::warn!(card_token = %token, "stopping with a card in doubt: it is settled at the next start");
                return;
            }
            if self.inner.store_suspect.load(Ordering::SeqCst) {
                // A write's outcome is unknown: read the file afresh first.
                if let Err(e) = self.db(|s| s.reopen()).await {
                    self.store_trouble("reopening the job store to settle a card", &e);
                    // Said at once: the card waits for the store, not for a step.
                    self.doubt(
                        token,
                        None,
                        code,
                        "the job store cannot be written: the card is settled once it can",
                        false,
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(reopen_pause) => {}
                        _ = shutdown.cancelled() => {}
                    }
                    reopen_pause = (reopen_pause * 2).min(REOPEN_MAX);
                    continue;
                }
                reopen_pause = REOPEN_FIRST;
                self.store_ok();
                tracing::info!("job store reopened and read back");
                self.inner.store_suspect.store(false, Ordering::SeqCst);
            }
            let t = token.to_string();
            let journal = match self.db(move |s| s.journal(&t)).await {
                Ok(j) => j,
                Err(e) => {
                    self.store_trouble("reading a card's journal", &e);
                    self.doubt(
                        token,
                        None,
                        code,
                        &format!("the job store cannot be read: {e}"),
                        false,
                    );
                    self.pause(shutdown).await;
                    continue;
                }
            };
            let entries: Vec<recovery::Entry> = journal
                .iter()
                .filter_map(|e| {
                    Step::from_name(&e.step).map(|step| recovery::Entry {
                        step,
                        outcome: if e.phase == Phase::Intent { None } else { e.ok },
                        detail: e.detail.clone(),
                        printer: e.printer.clone(),
                    })
                })
                .collect();
            let step = recovery::interrupted_step(&entries).map(|s| s.name().to_string());
            if let Some(reason) = stuck.take() {
                self.doubt(token, step.clone(), code, &reason, true);
                tracing::error!(card_token = %token, reason = %reason, "only a technician can settle this card: check the printer, take the card out, then resolve it (satellite jobs resolve)");
                match self.await_technician(token, shutdown).await {
                    Some(Resolution::Removed) => {
                        let description = format!(
                            "{reason}; a technician took it out of the printer; it is not produced again"
                        );
                        self.finish(
                            token,
                            Status::ProductionError,
                            Some(Fault::new(code, "interrupted", description)),
                        )
                        .await;
                        return;
                    }
                    Some(Resolution::Retry) => continue,
                    None => return,
                }
            }
            let waiting = match &cause {
                Some(f) => f.description.clone(),
                None => why.clone(),
            };
            self.doubt(token, step.clone(), code, &waiting, false);
            if !matches!(
                self.printer().status().borrow().state,
                crate::printer::LinkState::Connected { .. }
            ) {
                let printer = self.printer();
                tokio::select! {
                    _ = printer.wait_connected() => {}
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    _ = shutdown.cancelled() => {}
                }
                continue;
            }
            // Only the printer holding the card can say where it is.
            let Some(answering) = self.printer().serial() else {
                self.pause(shutdown).await;
                continue;
            };
            let card = recovery::CardName {
                token,
                pan_masked: &pan_masked,
            };
            if let Some(Recovery::Technician { description }) =
                recovery::printer_replaced(&entries, &answering, &why, &card)
            {
                let held_by = recovery::holder(&entries).unwrap_or_default();
                tracing::error!(card_token = %token, held_by = %held_by, answering = %answering, "the printer holding the card was replaced: it cannot be located; find it in printer {held_by}, take it out, then resolve it (satellite jobs resolve); no card starts on printer {answering} until then");
                stuck = Some(description);
                continue;
            }
            let _hold = self.printer().hold_card(Some(answering.clone()));
            if link_fault && !restarted && !restart_checked {
                // Where the status words cannot show a restart (locating the
                // card reads them), the error mode can: once per card.
                restart_checked = true;
                if self.printer().check_restart().await.is_err() {
                    continue;
                }
            }
            let location = match self.printer().locate_card().await {
                Ok(CardWhere::Unknown) | Err(_) => {
                    self.pause(shutdown).await;
                    continue;
                }
                Ok(l) => l,
            };
            let fail = |description: String| Some(Fault::new(code, "interrupted", description));
            self.promise(
                "settling a card in doubt",
                progress::reject(&self.link_timeouts()),
            );
            let rejected_now = self.rejected_count().await;
            match recovery::decide(&entries, location, &why, rejected_now) {
                Recovery::Technician { description } => {
                    stuck = Some(description);
                    continue;
                }
                Recovery::AskAgain => {
                    self.pause(shutdown).await;
                    continue;
                }
                Recovery::Produced => {
                    tracing::info!(card_token = %token, "the card left through the bezel: the customer has it");
                    self.finish(token, Status::Produced, None).await;
                }
                Recovery::Fail { description } => {
                    self.finish(token, Status::ProductionError, fail(description))
                        .await;
                }
                Recovery::RejectThenFail { description } => {
                    match self.reject_checked(token, location, Some(&answering)).await {
                        RejectEnd::InRejectBox => {
                            let d = format!("{description}; it went to the reject box; it is not produced again");
                            self.finish(token, Status::ProductionError, fail(d)).await;
                        }
                        RejectEnd::Taken => {
                            tracing::info!(card_token = %token, "the customer took the card during its reject");
                            self.finish(token, Status::Produced, None).await;
                        }
                        RejectEnd::Gone => {
                            let d = format!("{description}; it then left the printer without reaching the reject box (removed by hand?); it is not produced again");
                            self.finish(token, Status::ProductionError, fail(d)).await;
                        }
                        RejectEnd::Refused(rf) => {
                            stuck = Some(refused_reject(&why, &rf));
                            continue;
                        }
                        RejectEnd::Doubt(f) => {
                            tracing::warn!(card_token = %token, error_code = %f.code, error = %f.description, "the reject's outcome is not certain; locating the card again");
                            self.pause(shutdown).await;
                            continue;
                        }
                    }
                }
            }
            return;
        }
    }

    fn doubt(
        &self,
        token: &str,
        step: Option<String>,
        code: ErrorCode,
        reason: &str,
        technician: bool,
    ) {
        self.set_activity(Activity::CardInDoubt {
            card: token.to_string(),
            step,
            code,
            reason: reason.to_string(),
            technician,
        });
    }

    async fn pause(&self, shutdown: &CancellationToken) {
        tokio::select! {
            _ = tokio::time::sleep(DOUBT_PAUSE) => {}
            _ = shutdown.cancelled() => {}
        }
    }

    /// Waits for a technician's word on a card the agent cannot settle.
    async fn await_technician(
        &self,
        token: &str,
        shutdown: &CancellationToken,
    ) -> Option<Resolution> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.inner
            .resolutions
            .lock()
            .expect("resolutions lock")
            .insert(token.to_string(), tx);
        tokio::pin!(rx);
        // Waiting for a person is a choice: the loop says so each
        // TECHNICIAN_TICK, and the watchdog keeps pinging.
        let r = loop {
            self.promise(
                "waiting for a technician",
                TECHNICIAN_TICK + progress::turn(&self.link_timeouts()),
            );
            tokio::select! {
                r = &mut rx => break r.ok(),
                _ = shutdown.cancelled() => break None,
                _ = tokio::time::sleep(TECHNICIAN_TICK) => {}
            }
        };
        self.inner
            .resolutions
            .lock()
            .expect("resolutions lock")
            .remove(token);
        if let Some(r) = r {
            tracing::info!(card_token = %token, resolution = ?r, "a technician resolved the card in doubt");
        }
        r
    }

    async fn finish(&self, token: &str, status: Status, fault: Option<Fault>) {
        let stopping = self.inner.stopping.clone();
        match &fault {
            None => tracing::info!(card_token = %token, "card produced and taken"),
            Some(f) => {
                tracing::warn!(card_token = %token, error_code = %f.code, reason = %f.reason, description = %f.description, "production failed")
            }
        }
        let (code, description) = (fault.as_ref().map(|f| f.code), fault.map(|f| f.description));
        // The next card waits until this one's end is recorded: the store is
        // the only memory across a crash.
        let mut pause = NOT_READY_PAUSE;
        // An attempt whose commit may have landed: a later "already
        // recorded" is then this very end.
        let mut uncertain = false;
        loop {
            self.promise(
                "recording the end of a card",
                pause + progress::journal(&self.link_timeouts()),
            );
            let (t, d) = (token.to_string(), description.clone());
            match self
                .db(move |s| s.finish(&t, status, code, d.as_deref()))
                .await
            {
                Ok(_) => {
                    self.store_ok();
                    self.inner.metrics.card_final(status, code);
                    if status == Status::ProductionError {
                        self.clear_card_faults().await;
                    }
                    return;
                }
                Err(e @ (StoreError::WrongState { .. } | StoreError::NotFound)) => {
                    // After an uncertain commit, the first attempt may have landed.
                    tracing::warn!(card_token = %token, error = %e, "the end of production is already recorded, or the card is gone");
                    if uncertain && matches!(e, StoreError::WrongState { .. }) {
                        self.inner.metrics.card_final(status, code);
                    }
                    if status == Status::ProductionError {
                        self.clear_card_faults().await;
                    }
                    return;
                }
                Err(e) => {
                    self.store_failed(&e);
                    uncertain |= matches!(e, StoreError::Uncertain(_));
                    self.store_trouble("recording the end of a card", &e);
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = stopping.cancelled() => {
                            // The journal holds what happened: the next start
                            // settles the card from it.
                            tracing::warn!(card_token = %token, "stopping before the end of production could be recorded: it is settled at the next start");
                            return;
                        }
                    }
                    pause = (pause * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    /// Clears the printer's record of the failed card's faults (`Scs`): the
    /// event flags a fault latched (a magnetic write error, say) describe
    /// that card, which is now settled, and would otherwise keep the printer
    /// "not ready" for the next one. Conditions that persist (a cover open, a
    /// full box) are reported again by the printer.
    async fn clear_card_faults(&self) {
        if let Err(f) = self.printer().run(dialect::ops::Op::ClearStatus).await {
            tracing::debug!(error_code = %f.code, error = %f.description, "clearing the printer's status failed");
        }
    }

    /// The steps of a card. A refusal once the card may be inside sends it
    /// to the reject box (journaled and checked like any physical step).
    async fn steps(&self, job: &Job) -> Ended {
        let t = self.link_timeouts();
        self.promise("reading the card", progress::journal(&t));
        // Until its steps are known: reading its data.
        *self.inner.card_until.lock().expect("card_until lock") =
            Some(std::time::Instant::now() + progress::journal(&t) + progress::journal(&t));
        let feeder = match self.feeder_for(&job.meta.card_type).await {
            Ok(f) => f,
            Err(f) => return Ended::Certain(Err(f)),
        };
        // Deferred data too: it was fetched and sealed while the card was
        // READY (`deferred_fetch.rs`); a card is not started without it.
        let card = match self.stored_card_data(job).await {
            Ok(c) => c,
            Err(f) => return Ended::Certain(Err(f)),
        };
        let needs = Needs {
            chip: !card.chip.is_empty(),
            magnetic: !card.tracks.is_empty(),
            print: !card.text.is_empty() || card.panels.is_some(),
            emboss: !card.emboss.is_empty(),
        };
        let steps = plan(needs);
        let until = std::time::Instant::now() + progress::card(&steps, &card, &t, &self.config());
        *self.inner.card_until.lock().expect("card_until lock") = Some(until);
        // Every step of this card goes to the printer answering now, and
        // only to it: another printer on the link puts the card in doubt.
        let on = self.printer().serial();
        let _hold = self.printer().hold_card(on.clone());
        self.promise("feeder", progress::feeder(&t));
        if let Err(f) = self.printer().select_feeder(feeder).await {
            return if f.uncertain {
                Ended::Doubt(f)
            } else {
                Ended::Certain(Err(f))
            };
        }
        for step in steps {
            self.set_activity(Activity::Producing {
                card: job.meta.card_token.clone(),
                step: Some(step.name().to_string()),
            });
            let run = self.step(job, step, &card, feeder);
            let budget = progress::step(step, &card, &t, &self.config());
            let f = match self
                .journaled(&job.meta.card_token, step, on.as_deref(), budget, run)
                .await
            {
                Journaled::Done => {
                    self.promise("journal", progress::journal(&t));
                    if step == Step::Insert {
                        let _ = self.db(move |s| s.consume(feeder)).await;
                    }
                    continue;
                }
                Journaled::Doubt(f) => return Ended::Doubt(f),
                Journaled::Failed(f) => f,
            };
            if f.code == ErrorCode::PRD_FEEDER_EMPTY {
                // The feeder's sensor wins over the count.
                let card_type = job.meta.card_type.clone();
                let _ = self
                    .db(move |s| s.set_inventory(feeder, &card_type, 0))
                    .await;
            }
            // Where the card is after a refusal at this step.
            // Only a failed wait for the customer leaves the card in the bezel
            // for sure; a refused presentation did not put it there.
            let was = if step == Step::Taken {
                CardWhere::Presented
            } else {
                CardWhere::Inside
            };
            return match self
                .reject_checked(&job.meta.card_token, was, on.as_deref())
                .await
            {
                // After a refused insert, usually nothing is inside.
                RejectEnd::Gone if step == Step::Insert => Ended::Certain(Err(f)),
                RejectEnd::InRejectBox => Ended::Certain(Err(Fault {
                    description: format!("{}; the card went to the reject box", f.description),
                    ..f
                })),
                // It left through the bezel while being retracted: the customer has it.
                RejectEnd::Taken => Ended::Certain(Ok(())),
                RejectEnd::Gone => Ended::Certain(Err(Fault {
                    description: format!(
                        "{}; the card is no longer in the printer and was not seen leaving (removed by hand?)",
                        f.description
                    ),
                    ..f
                })),
                RejectEnd::Refused(reject) => Ended::Stuck { cause: f, reject },
                RejectEnd::Doubt(_) => Ended::Doubt(f),
            };
        }
        Ended::Certain(Ok(()))
    }

    /// The sealed card data of a job that came with it.
    async fn stored_card_data(&self, job: &Job) -> Result<CardData, Fault> {
        let t = job.meta.card_token.clone();
        let data = match self.db(move |s| s.card_data(&t)).await {
            Ok(d) => d,
            Err(e) => {
                return Err(Fault::new(
                    ErrorCode::UNKNOWN_ERROR,
                    "other",
                    format!("card data unavailable: {e}"),
                ))
            }
        };
        let card: CardData = match serde_json::from_slice(&data) {
            Ok(c) => c,
            Err(e) => {
                return Err(Fault::new(
                    ErrorCode::PRD_UNEXPECTED_DATA,
                    "other",
                    // The parser's message may quote card data: say only where.
                    format!(
                        "stored card data unreadable ({:?} error at line {}, column {})",
                        e.classify(),
                        e.line(),
                        e.column()
                    ),
                ));
            }
        };
        drop(data);
        Ok(card)
    }

    /// Intent, step, outcome. A step whose outcome is uncertain keeps its
    /// intent open, as a crash would.
    /// `on` is the serial number of the printer the step goes to (the one
    /// holding the card), journaled with the intent and the outcome.
    async fn journaled(
        &self,
        token: &str,
        step: Step,
        on: Option<&str>,
        budget: Duration,
        run: impl std::future::Future<Output = Result<(), Fault>>,
    ) -> Journaled {
        self.promise("journal", progress::journal(&self.link_timeouts()));
        let t = token.to_string();
        let printer = on.map(str::to_string);
        let p = printer.clone();
        if let Err(e) = self
            .db(move |s| s.intent_on(&t, step.name(), None, p.as_deref()))
            .await
        {
            self.store_failed(&e);
            return Journaled::Doubt(store_fault(e));
        }
        tracing::debug!(step = step.name(), "step");
        self.promise(step.name(), budget);
        let began = std::time::Instant::now();
        let result = run.await;
        self.record_timing(step, began.elapsed());
        if let Err(f) = &result {
            if f.uncertain {
                tracing::warn!(step = step.name(), error_code = %f.code, error = %f.description, "the step's outcome is not certain");
                return Journaled::Doubt(f.clone());
            }
        }
        let t = token.to_string();
        let (ok, detail) = match &result {
            Ok(()) => (true, None),
            Err(f) => (false, Some(format!("{} {}", f.code, f.description))),
        };
        if let Err(e) = self
            .db(move |s| s.outcome_on(&t, step.name(), ok, detail.as_deref(), printer.as_deref()))
            .await
        {
            // It happened (or was refused), and the journal does not say so.
            self.store_failed(&e);
            return Journaled::Doubt(result.err().unwrap_or_else(|| store_fault(e)));
        }
        match result {
            Ok(()) => Journaled::Done,
            Err(f) => Journaled::Failed(f),
        }
    }

    /// Rejects the card, journaled, then confirms where it went: the card
    /// position, and the reject counter where the firmware has one. `was` is
    /// where the card was last known: a card last seen in the bezel and gone
    /// now was taken by the customer.
    /// `on` is the serial number of the printer holding the card, journaled
    /// with the reject.
    async fn reject_checked(&self, token: &str, was: CardWhere, on: Option<&str>) -> RejectEnd {
        let p = &self.printer();
        let on = on.map(str::to_string);
        self.promise("reject", progress::reject(p.timeouts()));
        let before = match p.locate_card().await {
            Ok(CardWhere::None) if was == CardWhere::Presented => {
                // Journaled, so that a restart before the end is recorded
                // still knows the customer has it.
                let t = token.to_string();
                let note = recovery::reject_note(true, None);
                let r = self
                    .db(move |s| {
                        s.intent_on(&t, Step::Reject.name(), Some(&note), on.as_deref())?;
                        s.outcome_on(
                            &t,
                            Step::Reject.name(),
                            true,
                            Some(recovery::TAKEN),
                            on.as_deref(),
                        )
                    })
                    .await;
                if let Err(e) = r {
                    self.store_failed(&e);
                    return RejectEnd::Doubt(store_fault(e));
                }
                return RejectEnd::Taken;
            }
            Ok(CardWhere::None) => return RejectEnd::Gone,
            Ok(CardWhere::Unknown) => {
                return RejectEnd::Doubt(
                    Fault::new(
                        ErrorCode::PRD_UNEXPECTED_DATA,
                        "other",
                        "the printer cannot say where the card is",
                    )
                    .uncertain(),
                )
            }
            Ok(w) => w,
            Err(f) if f.uncertain => return RejectEnd::Doubt(f),
            Err(f) => return RejectEnd::Refused(f),
        };
        let count_before = self.rejected_count().await;
        let t = token.to_string();
        let note = recovery::reject_note(before == CardWhere::Presented, count_before);
        let o = on.clone();
        if let Err(e) = self
            .db(move |s| s.intent_on(&t, Step::Reject.name(), Some(&note), o.as_deref()))
            .await
        {
            self.store_failed(&e);
            return RejectEnd::Doubt(store_fault(e));
        }
        let began = std::time::Instant::now();
        let result = p.reject().await;
        self.record_timing(Step::Reject, began.elapsed());
        if let Err(f) = &result {
            if f.uncertain {
                return RejectEnd::Doubt(f.clone());
            }
        }
        let after = match p.locate_card().await {
            Ok(w) => w,
            Err(f) => return RejectEnd::Doubt(f.uncertain()),
        };
        let count_after = self.rejected_count().await;
        let end = match (result, after) {
            (Err(f), _) => RejectEnd::Refused(f),
            (Ok(()), CardWhere::Unknown) => {
                return RejectEnd::Doubt(
                    Fault::new(ErrorCode::PRD_UNEXPECTED_DATA, "other", "after the reject, the printer cannot say where the card is").uncertain(),
                )
            }
            (Ok(()), CardWhere::Inside | CardWhere::Presented) => RejectEnd::Refused(Fault::new(
                ErrorCode::PRD_UNEXPECTED_DATA,
                "other",
                "the printer answered the reject but still senses the card",
            )),
            (Ok(()), CardWhere::None) => match (count_before, count_after) {
                (Some(b), Some(a)) if a > b => RejectEnd::InRejectBox,
                (Some(_), Some(_)) if before == CardWhere::Presented => RejectEnd::Taken,
                (Some(_), Some(_)) => RejectEnd::Refused(Fault::new(
                    ErrorCode::PRD_UNEXPECTED_DATA,
                    "other",
                    "the card left the printer but the reject box did not count it",
                )),
                // Without a counter: a card from inside can only have gone to the box.
                _ if before == CardWhere::Inside => RejectEnd::InRejectBox,
                _ => RejectEnd::Refused(Fault::new(
                    ErrorCode::PRD_UNEXPECTED_DATA,
                    "other",
                    "the card left the bezel during the reject and this printer cannot tell whether it reached the reject box or the customer took it",
                )),
            },
        };
        let (ok, detail) = match &end {
            RejectEnd::InRejectBox => (true, "in the reject box".to_string()),
            RejectEnd::Taken => (true, recovery::TAKEN.to_string()),
            RejectEnd::Refused(f) => (false, format!("{} {}", f.code, f.description)),
            RejectEnd::Gone | RejectEnd::Doubt(_) => unreachable!("returned above"),
        };
        let t = token.to_string();
        if let Err(e) = self
            .db(move |s| s.outcome_on(&t, Step::Reject.name(), ok, Some(&detail), on.as_deref()))
            .await
        {
            self.store_failed(&e);
            return RejectEnd::Doubt(store_fault(e));
        }
        end
    }

    /// The printer's reject counter, where the profile says it has one.
    async fn rejected_count(&self) -> Option<u64> {
        let p = &self.printer();
        if p.profile().capabilities.reject_counter {
            p.rejected_count().await.ok()
        } else {
            None
        }
    }

    async fn step(&self, job: &Job, step: Step, card: &CardData, _feeder: u8) -> Result<(), Fault> {
        let p = &self.printer();
        match step {
            Step::Insert => p.insert().await,
            Step::Chip => {
                p.to_smart_station().await?;
                let chip = self.chip().ok_or_else(|| {
                    Fault::new(
                        ErrorCode::PRT_SETUP_ERROR,
                        "option-missing",
                        "chip personalisation is disabled in the configuration",
                    )
                })?;
                chip.personalise(&card.chip_script()).await.map(drop)
            }
            Step::Magnetic => p.encode_magnetic(&card.tracks).await,
            Step::Print => {
                if let Some(panels) = &card.panels {
                    p.print_panels(panels.bitmaps(p.profile().geometry)?, false)
                        .await?;
                }
                if card.text.is_empty() {
                    Ok(())
                } else {
                    p.print_text(&card.text).await
                }
            }
            Step::Emboss => p.emboss(&card.emboss).await,
            Step::Verify => {
                p.check_ready().await?;
                match p.locate_card().await? {
                    CardWhere::Inside => Ok(()),
                    other => Err(Fault::new(
                        ErrorCode::PRD_UNEXPECTED_DATA,
                        "other",
                        format!(
                            "before presenting, the printer reports the card {other:?}, not inside"
                        ),
                    )),
                }
            }
            Step::Present => p.present().await,
            Step::Taken => {
                let take = Duration::from_millis(p.profile().timeouts.take.max(1));
                let take = self
                    .config()
                    .printer
                    .timeouts
                    .take
                    .map(Duration::from_millis)
                    .unwrap_or(take);
                let end = p
                    .wait_take(take, self.verdict(&job.meta.card_token))
                    .await?;
                match end {
                    TakeEnd::Taken => Ok(()),
                    end => Err(end.fault(take)),
                }
            }
            Step::Reject => p.reject().await,
        }
    }

    /// The kiosk application's verdict, when final validation is on; never
    /// comes otherwise (the customer taking the card is the acceptance).
    fn verdict(&self, token: &str) -> impl std::future::Future<Output = Verdict> + Send + 'static {
        let rx = self.config().production.final_validation.then(|| {
            let (tx, rx) = tokio::sync::oneshot::channel();
            self.inner
                .verdicts
                .lock()
                .expect("verdicts lock")
                .insert(token.to_string(), tx);
            rx
        });
        async move {
            match rx {
                Some(rx) => match rx.await {
                    Ok(v) => v,
                    Err(_) => std::future::pending().await,
                },
                None => std::future::pending().await,
            }
        }
    }

    /// The feeder holding this card type. No inventory at all, or none for
    /// the type, is INV_NOT_INITIALIZED. A count of zero is not trusted over the
    /// feeder's own sensor: the printer says whether a card comes.
    async fn feeder_for(&self, card_type: &str) -> Result<u8, Fault> {
        let stock = self.db(|s| s.inventory()).await.map_err(store_fault)?;
        if stock.is_empty() {
            return Err(Fault::new(
                ErrorCode::INV_NOT_INITIALIZED,
                "inventory",
                "no inventory: a technician has not yet set the card type and count of the feeders",
            ));
        }
        // The reading the loop took just before this card.
        let reading = self.printer().view().borrow().reading.clone();
        super::next_card::feeder_of(&stock, card_type, |n| {
            super::next_card::sensed_empty(reading.as_ref(), n)
        })
        .ok_or_else(|| {
            Fault::new(
                ErrorCode::INV_NOT_INITIALIZED,
                "inventory",
                format!("no feeder is set up with card type {card_type:?}"),
            )
        })
    }

    /// Cards a restart (or an uncertain store write) caught in production:
    /// settled from the journal and the printer, never produced again.
    async fn recover(&self, shutdown: &CancellationToken) {
        // Nothing else may be produced before these cards are settled.
        let jobs = loop {
            match self.db(|s| s.in_progress()).await {
                Ok(j) => break j,
                Err(e) => {
                    self.store_trouble("reading the cards in production", &e);
                    tokio::select! {
                        _ = tokio::time::sleep(NOT_READY_PAUSE) => {}
                        _ = shutdown.cancelled() => return,
                    }
                }
            }
        };
        for job in jobs {
            if shutdown.is_cancelled() {
                return;
            }
            tracing::warn!(card_token = %job.meta.card_token, "a card was in production: finding where it is");
            self.settle(&job.meta.card_token, None, None, shutdown)
                .await;
        }
    }
}

/// Why a card whose reject the printer refused waits for a technician.
fn refused_reject(why: &str, reject: &Fault) -> String {
    format!(
        "{why}; the card could not be put in the reject box ({}: {})",
        reject.code, reject.description
    )
}

fn store_fault(e: StoreError) -> Fault {
    let f = Fault::new(
        ErrorCode::UNKNOWN_ERROR,
        "store",
        format!("the job store failed: {e}"),
    );
    if matches!(
        e,
        StoreError::Uncertain(_) | StoreError::Unwritable(_) | StoreError::Db(_)
    ) {
        f.uncertain()
    } else {
        f
    }
}
