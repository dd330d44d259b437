//! The production loop: one card at a time, each physical step journaled in
//! the store (intent before, outcome after), any failure after insertion
//! sending the card to the reject box, and recovery of cards a restart caught
//! in production before anything else.

use super::plan::{plan, Needs, Step};
use super::recovery::{self, Recovery};
use super::Engine;
use crate::codes::{ErrorCode, Fault};
use crate::printer::steps::{CardWhere, TakeEnd, Verdict};
use crate::request::CardData;
use crate::store::{Job, Phase, Status, StoreError};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long to wait before looking again at a printer that is not ready.
const NOT_READY_PAUSE: Duration = Duration::from_secs(1);

impl Engine {
    /// Recovers, then produces queued cards until `shutdown`. A card in
    /// production is finished before the loop ends.
    pub async fn run(&self, shutdown: CancellationToken) {
        self.recover(&shutdown).await;
        let mut last_not_ready: Option<String> = None;
        while !shutdown.is_cancelled() {
            let next = match self.db(|s| s.next_queued()).await {
                Ok(j) => j,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the queue");
                    None
                }
            };
            let Some(job) = next else {
                // Idle: fold the WAL into the database so that erased card
                // data does not linger in the log.
                if let Err(e) = self.db(|s| s.checkpoint()).await {
                    tracing::warn!(error = %e, "WAL checkpoint failed");
                }
                tokio::select! {
                    _ = self.inner.wake.notified() => {}
                    _ = shutdown.cancelled() => {}
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
                continue;
            };
            if let Err(f) = self.inner.printer.check_ready().await {
                let why = format!("{}: {}", f.code, f.description);
                if last_not_ready.as_ref() != Some(&why) {
                    tracing::warn!(code = %f.code, reason = %f.reason, waiting = %job.card_token, "printer not ready; cards wait");
                    last_not_ready = Some(why);
                }
                tokio::select! {
                    _ = tokio::time::sleep(NOT_READY_PAUSE) => {}
                    _ = shutdown.cancelled() => {}
                }
                continue;
            }
            if last_not_ready.take().is_some() {
                tracing::info!("printer ready again");
            }
            self.produce(job).await;
        }
    }

    /// One card, from READY to a final state.
    async fn produce(&self, job: Job) {
        let token = job.card_token.clone();
        let span = tracing::info_span!("card", card = %token, pan = %job.pan_masked);
        tracing::Instrument::instrument(self.produce_in_span(job, token), span).await
    }

    async fn produce_in_span(&self, job: Job, token: String) {
        let t = token.clone();
        if let Err(e) = self.db(move |s| s.start(&t)).await {
            tracing::error!(error = %e, "cannot start the card");
            // Do not spin on a store that refuses writes.
            tokio::time::sleep(NOT_READY_PAUSE).await;
            return;
        }
        tracing::info!(card_type = %job.card_type, "production started");
        self.inner
            .producing
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let outcome = self.steps(&job).await;
        self.inner
            .producing
            .store(false, std::sync::atomic::Ordering::Relaxed);
        // A verdict nobody gave (the customer took the card first) is dropped.
        self.inner
            .verdicts
            .lock()
            .expect("verdicts lock")
            .remove(&token);
        if self.inner.in_doubt.swap(false, Ordering::SeqCst) {
            tracing::error!(card = %token, "a step's outcome could not be journaled: the card is in doubt; production waits for the store, then recovery decides from the journal");
            self.settle_in_doubt(&token).await;
            return;
        }
        let (status, fault) = match outcome {
            Ok(()) => (Status::Produced, None),
            Err(f) => (Status::ProductionError, Some(f)),
        };
        self.finish(&token, status, fault).await;
    }

    /// Waits until recovery has given the card a final state.
    async fn settle_in_doubt(&self, token: &str) {
        loop {
            tokio::time::sleep(NOT_READY_PAUSE).await;
            self.recover(&CancellationToken::new()).await;
            let t = token.to_string();
            if let Ok(Some(job)) = self.db(move |s| s.job(&t)).await {
                if job.status.is_final() {
                    return;
                }
            }
        }
    }

    async fn finish(&self, token: &str, status: Status, fault: Option<Fault>) {
        match &fault {
            None => tracing::info!(card = %token, "card produced and taken"),
            Some(f) => {
                tracing::warn!(card = %token, code = %f.code, reason = %f.reason, description = %f.description, "production failed")
            }
        }
        let (code, description) = (fault.as_ref().map(|f| f.code), fault.map(|f| f.description));
        // The next card waits until this one's end is recorded: the store is
        // the only memory across a crash.
        let mut pause = NOT_READY_PAUSE;
        loop {
            let (t, d) = (token.to_string(), description.clone());
            match self
                .db(move |s| s.finish(&t, status, code, d.as_deref()))
                .await
            {
                Ok(_) => return,
                Err(e @ (StoreError::WrongState { .. } | StoreError::NotFound)) => {
                    tracing::error!(card = %token, error = %e, "the end of production cannot be recorded for this card");
                    return;
                }
                Err(e) => {
                    tracing::error!(card = %token, error = %e, retry_in_ms = pause.as_millis() as u64, "cannot record the end of production; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    /// The steps of a card. Any failure once the card may be inside sends it
    /// to the reject box (journaled like any physical step) before returning.
    async fn steps(&self, job: &Job) -> Result<(), Fault> {
        let feeder = self.feeder_for(&job.card_type).await?;
        let t = job.card_token.clone();
        let data = self.db(move |s| s.card_data(&t)).await.map_err(|e| {
            Fault::new(
                ErrorCode::UNKNOWN_ERROR,
                "other",
                format!("card data unavailable: {e}"),
            )
        })?;
        let card: CardData = serde_json::from_slice(&data).map_err(|e| {
            Fault::new(
                ErrorCode::PRD_UNEXPECTED_DATA,
                "other",
                // The parser's message may quote card data: say only where.
                format!(
                    "stored card data unreadable ({:?} error at line {}, column {})",
                    e.classify(),
                    e.line(),
                    e.column()
                ),
            )
        })?;
        drop(data);
        let needs = Needs {
            chip: !card.chip.is_empty(),
            magnetic: !card.tracks.is_empty(),
            print: !card.text.is_empty() || card.panels.is_some(),
            emboss: !card.emboss.is_empty(),
        };
        self.inner.printer.select_feeder(feeder).await?;
        for step in plan(needs) {
            let result = self
                .journaled(&job.card_token, step, self.step(job, step, &card, feeder))
                .await;
            if let Err(f) = result {
                if self.inner.in_doubt.load(Ordering::SeqCst) {
                    return Err(f);
                }
                if f.code == ErrorCode::PRD_FEEDER_EMPTY {
                    // The feeder's sensor wins over the count.
                    let card_type = job.card_type.clone();
                    let _ = self
                        .db(move |s| s.set_inventory(feeder, &card_type, 0))
                        .await;
                }
                // After a failed insert the card may be half in: reject unless
                // the printer says for sure that nothing is inside.
                if step != Step::Insert
                    || !matches!(self.inner.printer.locate_card().await, Ok(CardWhere::None))
                {
                    self.reject(&job.card_token).await;
                }
                return Err(f);
            }
            if step == Step::Insert {
                let _ = self.db(move |s| s.consume(feeder)).await;
            }
        }
        Ok(())
    }

    /// Intent, step, outcome.
    async fn journaled(
        &self,
        token: &str,
        step: Step,
        run: impl std::future::Future<Output = Result<(), Fault>>,
    ) -> Result<(), Fault> {
        let t = token.to_string();
        self.db(move |s| s.intent(&t, step.name()))
            .await
            .map_err(store_fault)?;
        tracing::debug!(step = step.name(), "step");
        let began = std::time::Instant::now();
        let result = run.await;
        self.record_timing(step, began.elapsed());
        let t = token.to_string();
        let (ok, detail) = match &result {
            Ok(()) => (true, None),
            Err(f) => (false, Some(format!("{} {}", f.code, f.description))),
        };
        if let Err(e) = self
            .db(move |s| s.outcome(&t, step.name(), ok, detail.as_deref()))
            .await
        {
            if result.is_ok() {
                // It happened, and the journal does not say so: nothing may
                // move the card until recovery has read the journal.
                self.inner.in_doubt.store(true, Ordering::SeqCst);
            }
            return Err(store_fault(e));
        }
        result
    }

    async fn reject(&self, token: &str) {
        let printer = self.inner.printer.clone();
        if let Err(f) = self
            .journaled(token, Step::Reject, async move { printer.reject().await })
            .await
        {
            tracing::error!(code = %f.code, description = %f.description, "the card could not be put in the reject box: a technician must remove it");
        }
    }

    async fn step(&self, job: &Job, step: Step, card: &CardData, _feeder: u8) -> Result<(), Fault> {
        let p = &self.inner.printer;
        match step {
            Step::Insert => p.insert().await,
            Step::Chip => {
                p.to_smart_station().await?;
                let chip = self.inner.chip.as_ref().ok_or_else(|| {
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
                    .inner
                    .config
                    .printer
                    .timeouts
                    .take
                    .map(Duration::from_millis)
                    .unwrap_or(take);
                let end = p.wait_take(take, self.verdict(&job.card_token)).await?;
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
        let rx = self.inner.config.production.final_validation.then(|| {
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
        let mut holding: Vec<_> = stock.iter().filter(|f| f.card_type == card_type).collect();
        holding.sort_by_key(|f| std::cmp::Reverse(f.count));
        holding.first().map(|f| f.feeder).ok_or_else(|| {
            Fault::new(
                ErrorCode::INV_NOT_INITIALIZED,
                "inventory",
                format!("no feeder is set up with card type {card_type:?}"),
            )
        })
    }

    /// Cards a restart caught in production: never produced again.
    async fn recover(&self, shutdown: &CancellationToken) {
        let jobs = match self.db(|s| s.in_progress()).await {
            Ok(j) => j,
            Err(e) => {
                tracing::error!(error = %e, "cannot read cards in production");
                return;
            }
        };
        for job in jobs {
            let token = job.card_token.clone();
            loop {
                if shutdown.is_cancelled() {
                    return;
                }
                let t = token.clone();
                let journal = match self.db(move |s| s.journal(&t)).await {
                    Ok(j) => j,
                    Err(e) => {
                        tracing::error!(card = %token, error = %e, "cannot read the journal");
                        break;
                    }
                };
                let entries: Vec<recovery::Entry> = journal
                    .iter()
                    .filter_map(|e| {
                        Step::from_name(&e.step).map(|step| recovery::Entry {
                            step,
                            outcome: if e.phase == Phase::Intent { None } else { e.ok },
                        })
                    })
                    .collect();
                let location = self
                    .inner
                    .printer
                    .locate_card()
                    .await
                    .unwrap_or(CardWhere::Unknown);
                match recovery::decide(&entries, location) {
                    Recovery::AskAgain => {
                        tracing::warn!(card = %token, "after a restart: the printer cannot say where the card is; asking again");
                        tokio::time::sleep(NOT_READY_PAUSE).await;
                        continue;
                    }
                    Recovery::Produced => {
                        tracing::info!(card = %token, "after a restart: the card left through the bezel");
                        self.finish(&token, Status::Produced, None).await;
                    }
                    Recovery::RejectThenFail { description } => {
                        self.reject(&token).await;
                        self.finish(
                            &token,
                            Status::ProductionError,
                            Some(Fault::new(
                                ErrorCode::UNKNOWN_ERROR,
                                "interrupted",
                                description,
                            )),
                        )
                        .await;
                    }
                    Recovery::Fail { description } => {
                        self.finish(
                            &token,
                            Status::ProductionError,
                            Some(Fault::new(
                                ErrorCode::UNKNOWN_ERROR,
                                "interrupted",
                                description,
                            )),
                        )
                        .await;
                    }
                }
                break;
            }
        }
    }
}

fn store_fault(e: StoreError) -> Fault {
    Fault::new(
        ErrorCode::UNKNOWN_ERROR,
        "store",
        format!("the job store failed: {e}"),
    )
}
