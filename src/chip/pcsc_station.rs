//! The station behind pcsc-lite: blocking pcsc calls in one blocking task per
//! session, watched by an async supervisor that enforces the time-outs.
//!
//! PC/SC itself has no time-out on a card exchange (pcscd waits for the
//! reader driver, and vpcd waits for its virtual card without limit). The
//! session reports each phase with its time budget through a watch channel; the
//! supervisor answers with a fault when a budget runs out, and marks the
//! session abandoned: the blocking task stops at the next step and lets the
//! card go once pcscd answers. Until then it may hold the reader: later faults
//! say so.

use super::faults::{self, LinkError};
use super::pcsclite::{
    Card, Context, Disposition, Error as PcscError, ReaderState, State, MAX_BUFFER_SIZE_EXTENDED,
};
use super::run::{run_script, CardChannel};
use super::{ChipReport, ChipScript, PcscConfig, ReaderStatus};
use crate::codes::Fault;
use std::ffi::CString;
use std::sync::atomic::{AtomicIsize, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How long a diagnostic call (reader list, reader states) may take.
const DIAGNOSTIC_TIMEOUT: Duration = Duration::from_secs(5);
/// Pauses between connection attempts while the reader is busy or behind.
const BUSY_RETRY: Duration = Duration::from_millis(100);
const GONE_RETRY: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reaching pcscd and listing readers.
    Starting,
    /// Waiting for a card under the contacts.
    Waiting,
    /// Connecting: power-up, answer to reset, protocol.
    Connecting,
    /// Exchanging the APDUs of a step (1-based).
    Step(usize),
}

#[derive(Debug, Clone, Copy)]
struct Progress {
    phase: Phase,
    budget: Duration,
}

/// Abandoned sessions whose blocking task has not returned yet (may dip below
/// zero for a moment).
static STUCK_SESSIONS: AtomicIsize = AtomicIsize::new(0);

/// A note for faults that a stuck session may explain.
fn stuck_note() -> &'static str {
    if STUCK_SESSIONS.load(Ordering::SeqCst) > 0 {
        "; an earlier chip session of the agent is still blocked on the reader (restart pcscd if this persists)"
    } else {
        ""
    }
}

const RUNNING: u8 = 0;
const ABANDONED: u8 = 1;
const FINISHED: u8 = 2;

/// Whether a session runs, was given up by its supervisor, or has ended.
#[derive(Clone, Default)]
struct Fate(Arc<AtomicU8>);

impl Fate {
    /// The supervisor gives up (unless the session has just ended).
    fn abandon(&self) {
        let given_up =
            self.0
                .compare_exchange(RUNNING, ABANDONED, Ordering::SeqCst, Ordering::SeqCst);
        if given_up.is_ok() {
            STUCK_SESSIONS.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn abandoned(&self) -> bool {
        self.0.load(Ordering::SeqCst) == ABANDONED
    }
    fn finish(&self) {
        if self.0.swap(FINISHED, Ordering::SeqCst) == ABANDONED {
            STUCK_SESSIONS.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// The blocking side's link to its supervisor.
struct Reporter {
    tx: watch::Sender<Progress>,
    fate: Fate,
}

impl Drop for Reporter {
    // The blocking task ends.
    fn drop(&mut self) {
        self.fate.finish();
    }
}

impl Reporter {
    fn set(&self, phase: Phase, budget: Duration) {
        // No receiver: the supervisor has gone, `fate` says so.
        let _ = self.tx.send(Progress { phase, budget });
    }
    fn abandoned(&self) -> bool {
        self.fate.abandoned()
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Runs `script` on the card of the configured reader.
pub(super) async fn personalise(
    config: &PcscConfig,
    script: &ChipScript,
) -> Result<ChipReport, Fault> {
    let total = script.steps.len();
    script
        .validate()
        .map_err(|(n, e)| faults::bad_script(n, total, e))?;
    if total == 0 {
        return Ok(ChipReport { steps_run: 0 });
    }
    let apdu_timeout = Duration::from_millis(config.apdu_timeout_ms.max(1));
    let (tx, mut rx) = watch::channel(Progress {
        phase: Phase::Starting,
        budget: apdu_timeout,
    });
    let fate = Fate::default();
    let reporter = Reporter {
        tx,
        fate: fate.clone(),
    };
    let (cfg, owned_script) = (config.clone(), script.clone());
    let mut task = tokio::task::spawn_blocking(move || session(&cfg, &owned_script, &reporter));
    loop {
        let progress = *rx.borrow_and_update();
        tokio::select! {
            biased;
            joined = &mut task => return joined.unwrap_or_else(|e| Err(join_fault(e))),
            changed = rx.changed() => {
                if changed.is_err() {
                    // The session has ended and dropped its reporter.
                    return (&mut task).await.unwrap_or_else(|e| Err(join_fault(e)));
                }
            }
            () = tokio::time::sleep(progress.budget) => {
                let fault = timeout_fault(progress, total);
                fate.abandon();
                tracing::warn!(error_code = %fault.code, description = %fault.description, "chip session abandoned");
                return Err(fault);
            }
        }
    }
}

fn timeout_fault(progress: Progress, total: usize) -> Fault {
    let ms = millis(progress.budget);
    let mut fault = match progress.phase {
        Phase::Starting => faults::service_missing(&format!(
            "the smart-card service (pcscd) did not answer within {ms} ms"
        )),
        Phase::Waiting => faults::service_missing(&format!(
            "the smart-card service (pcscd) stopped answering while waiting for the card ({ms} ms)"
        )),
        Phase::Connecting => faults::chip_mute(&format!("no answer within {ms} ms")),
        Phase::Step(n) => faults::chip_error(format!(
            "chip did not answer within {ms} ms at step {n} of {total}"
        )),
    };
    if !matches!(progress.phase, Phase::Step(_)) {
        fault.description.push_str(stuck_note());
    }
    fault
}

fn join_fault(e: tokio::task::JoinError) -> Fault {
    tracing::error!(panicked = e.is_panic(), "chip session task failed");
    faults::chip_error("chip session failed (internal error of the agent)".to_string())
}

/// The blocking session: context, reader, card, steps.
fn session(config: &PcscConfig, script: &ChipScript, rep: &Reporter) -> Result<ChipReport, Fault> {
    let apdu_timeout = Duration::from_millis(config.apdu_timeout_ms.max(1));
    let ctx = Context::establish().map_err(establish_fault)?;
    let (reader, name) = choose_reader(&ctx, config.reader.as_deref())?;
    let card = open_card(&ctx, &reader, &name, config, rep)?;
    tracing::info!(reader = %name, steps = script.steps.len(), "chip personalisation starts");
    let mut channel = PcscChannel {
        card,
        buf: vec![0; MAX_BUFFER_SIZE_EXTENDED],
        rep,
        apdu_timeout,
        link_failed: false,
    };
    let result = run_script(&mut channel, script, &name);
    let PcscChannel {
        card,
        mut buf,
        link_failed,
        ..
    } = channel;
    wipe(&mut buf);
    // A reset ends whatever session state the script opened on the chip. After
    // a failed exchange the card is gone or beyond reach: leave it. (Resetting
    // a card that has left makes pcscd mark the reader empty before its event
    // thread sees the removal; a card inserted soon after is then missed.)
    let disposition = if link_failed {
        Disposition::LeaveCard
    } else {
        Disposition::ResetCard
    };
    if let Err(e) = card.disconnect(disposition) {
        tracing::debug!(error = ?e, "disconnecting from the card failed");
    }
    match &result {
        Ok(report) => {
            tracing::info!(reader = %name, steps = report.steps_run, "chip personalisation done")
        }
        Err(f) => {
            tracing::warn!(reader = %name, error_code = %f.code, description = %f.description, "chip personalisation failed")
        }
    }
    result
}

fn wipe(buf: &mut [u8]) {
    buf.fill(0);
    std::hint::black_box(&*buf);
}

/// A short name of a pcsc error for descriptions (never data).
fn label(e: PcscError) -> &'static str {
    match e {
        PcscError::CommError => "reader communication error",
        PcscError::NotTransacted => "transmission failed",
        PcscError::Timeout => "reader time-out",
        PcscError::UnresponsiveCard => "unresponsive card",
        PcscError::UnpoweredCard => "card not powered",
        PcscError::UnsupportedCard => "unsupported card",
        PcscError::InvalidAtr => "invalid answer to reset",
        PcscError::ProtoMismatch => "no common protocol, T=0 or T=1",
        PcscError::InsufficientBuffer => "answer too long",
        PcscError::InternalError => "internal error of the smart-card service",
        PcscError::NoMemory => "smart-card service out of memory",
        PcscError::Cancelled | PcscError::SystemCancelled => "cancelled",
        PcscError::SharingViolation => "reader in use by another program",
        PcscError::NoAccess | PcscError::SecurityViolation => "access denied",
        PcscError::NoLibrary => "PC/SC library missing",
        _ => "unexpected smart-card error",
    }
}

fn is_service_error(e: PcscError) -> bool {
    matches!(e, PcscError::NoService | PcscError::ServiceStopped)
}

fn is_reader_error(e: PcscError) -> bool {
    matches!(
        e,
        PcscError::UnknownReader | PcscError::ReaderUnavailable | PcscError::NoReadersAvailable
    )
}

fn establish_fault(e: PcscError) -> Fault {
    tracing::warn!(error = ?e, "cannot reach the smart-card service");
    match e {
        PcscError::NoLibrary => faults::library_missing(),
        PcscError::NoService | PcscError::ServiceStopped | PcscError::CommError => {
            faults::service_missing("the smart-card service (pcscd) is not running")
        }
        PcscError::NoAccess | PcscError::SecurityViolation => {
            faults::service_missing("the smart-card service (pcscd) refused the agent (access denied: check its polkit rules)")
        }
        other => faults::service_missing(&format!("the smart-card service (pcscd) could not be reached ({})", label(other))),
    }
}

fn list_fault(e: PcscError) -> Fault {
    tracing::warn!(error = ?e, "cannot list the smart-card readers");
    if is_service_error(e) {
        faults::service_missing("the smart-card service (pcscd) stopped while listing readers")
    } else {
        faults::service_missing(&format!(
            "the smart-card service (pcscd) could not list readers ({})",
            label(e)
        ))
    }
}

fn reader_names(ctx: &Context) -> Result<Vec<CString>, Fault> {
    ctx.list_readers().map_err(list_fault)
}

fn lossy(name: &CString) -> String {
    name.to_string_lossy().into_owned()
}

/// The configured reader (a case-insensitive part of its name), else the first.
fn choose_reader(ctx: &Context, wanted: Option<&str>) -> Result<(CString, String), Fault> {
    let names = reader_names(ctx)?;
    let seen: Vec<String> = names.iter().map(lossy).collect();
    let wanted = wanted.map(str::trim).filter(|w| !w.is_empty());
    match pick_reader(&seen, wanted) {
        Some(i) => Ok((names[i].clone(), seen[i].clone())),
        None => {
            tracing::warn!(wanted = ?wanted, readers = ?seen, "no matching smart-card reader");
            Err(faults::reader_missing(wanted, &seen))
        }
    }
}

pub(super) fn pick_reader(seen: &[String], wanted: Option<&str>) -> Option<usize> {
    match wanted {
        Some(w) => {
            let w = w.to_lowercase();
            seen.iter().position(|n| n.to_lowercase().contains(&w))
        }
        None => (!seen.is_empty()).then_some(0),
    }
}

fn status_fault(e: PcscError, name: &str) -> Fault {
    tracing::warn!(reader = %name, error = ?e, "waiting for the card failed");
    if is_service_error(e) {
        faults::service_missing("the smart-card service (pcscd) stopped while waiting for the card")
    } else if is_reader_error(e) {
        faults::reader_gone(name, "while waiting for the card")
    } else {
        faults::service_missing(&format!("waiting for the card failed ({})", label(e)))
    }
}

fn connect_fault(e: PcscError, name: &str) -> Fault {
    tracing::warn!(reader = %name, error = ?e, "connecting to the card failed");
    match e {
        PcscError::UnresponsiveCard | PcscError::UnpoweredCard => {
            faults::chip_mute("unresponsive card")
        }
        PcscError::UnsupportedCard | PcscError::InvalidAtr => {
            faults::chip_error(format!("chip answer to reset is not usable ({})", label(e)))
        }
        PcscError::ProtoMismatch => {
            faults::chip_error("chip speaks neither T=0 nor T=1".to_string())
        }
        e if is_service_error(e) => faults::service_missing(
            "the smart-card service (pcscd) stopped while connecting to the card",
        ),
        e if is_reader_error(e) => faults::reader_gone(name, "while connecting to the card"),
        e => faults::chip_error(format!("connecting to the card failed ({})", label(e))),
    }
}

pub(super) fn link_error(e: PcscError) -> LinkError {
    match e {
        PcscError::RemovedCard | PcscError::NoSmartcard => LinkError::Removed,
        PcscError::ResetCard => LinkError::Reset,
        PcscError::UnresponsiveCard | PcscError::UnpoweredCard => LinkError::Unresponsive,
        PcscError::InsufficientBuffer => LinkError::Overflow,
        e if is_service_error(e) => LinkError::ServiceGone,
        e if is_reader_error(e) => LinkError::ReaderGone,
        e => LinkError::Comm(label(e)),
    }
}

/// Waits for a card in `reader` until `card_wait_ms`, then connects to it
/// exclusively (no other program may interleave commands during
/// personalisation), T=0 or T=1.
fn open_card<'c>(
    ctx: &'c Context,
    reader: &CString,
    name: &str,
    config: &PcscConfig,
    rep: &Reporter,
) -> Result<Card<'c>, Fault> {
    let apdu_timeout = Duration::from_millis(config.apdu_timeout_ms.max(1));
    let deadline = Instant::now() + Duration::from_millis(config.card_wait_ms);
    let mut states = [ReaderState::new(reader.clone(), State::UNAWARE)];
    loop {
        if rep.abandoned() {
            return Err(faults::chip_error(
                "personalisation abandoned before the first step".to_string(),
            ));
        }
        rep.set(
            Phase::Waiting,
            deadline.saturating_duration_since(Instant::now()) + apdu_timeout,
        );
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match ctx.get_status_change(remaining, &mut states) {
                Ok(()) | Err(PcscError::Timeout) => {}
                Err(e) => return Err(status_fault(e, name)),
            }
            let state = states[0].event_state();
            if state.contains(State::UNKNOWN) {
                return Err(faults::reader_gone(name, "while waiting for the card"));
            }
            // MUTE still connects below: pcscd powers the card up again there,
            // and its answer decides.
            if state.contains(State::PRESENT) {
                break;
            }
            if Instant::now() >= deadline {
                tracing::warn!(reader = %name, waited_ms = config.card_wait_ms, "no card in the reader");
                if state.contains(State::UNAVAILABLE) {
                    return Err(faults::reader_gone(name, "(its state is unavailable)"));
                }
                return Err(faults::card_missing(name, config.card_wait_ms));
            }
            states[0].sync_current_state();
        }
        rep.set(
            Phase::Connecting,
            deadline.saturating_duration_since(Instant::now()) + apdu_timeout,
        );
        match ctx.connect_exclusive(reader) {
            Ok(card) => return Ok(card),
            // Gone between the state and the connection (or pcscd is behind).
            Err(PcscError::NoSmartcard | PcscError::RemovedCard) => {
                if Instant::now() >= deadline {
                    return Err(faults::card_missing(name, config.card_wait_ms));
                }
                std::thread::sleep(GONE_RETRY);
            }
            Err(PcscError::SharingViolation) => {
                if Instant::now() >= deadline {
                    tracing::warn!(reader = %name, "the reader stays in use by another program");
                    let mut fault = faults::reader_busy(name, config.card_wait_ms);
                    fault.description.push_str(stuck_note());
                    return Err(fault);
                }
                std::thread::sleep(BUSY_RETRY);
            }
            Err(e) => return Err(connect_fault(e, name)),
        }
    }
}

struct PcscChannel<'a> {
    card: Card<'a>,
    buf: Vec<u8>,
    rep: &'a Reporter,
    apdu_timeout: Duration,
    /// An exchange failed below the status word level.
    link_failed: bool,
}

impl CardChannel for PcscChannel<'_> {
    fn begin_step(&mut self, step: usize, _total: usize) -> bool {
        if self.rep.abandoned() {
            return false;
        }
        self.rep.set(Phase::Step(step), self.apdu_timeout);
        true
    }

    fn exchange(&mut self, command: &[u8]) -> Result<u16, LinkError> {
        let (result, used) = match self.card.transmit(command, &mut self.buf) {
            Ok(n) => {
                let answer = &self.buf[..n];
                let sw = if n >= 2 {
                    Ok(u16::from_be_bytes([answer[n - 2], answer[n - 1]]))
                } else {
                    Err(LinkError::NoStatus)
                };
                (sw, n)
            }
            Err(e) => {
                tracing::warn!(error = ?e, "card exchange failed");
                (Err(link_error(e)), self.buf.len())
            }
        };
        wipe(&mut self.buf[..used]);
        self.link_failed |= result.is_err();
        result
    }
}

async fn diagnostic<T: Send + 'static>(f: fn() -> Result<T, Fault>) -> Result<T, Fault> {
    let task = tokio::task::spawn_blocking(f);
    match tokio::time::timeout(DIAGNOSTIC_TIMEOUT, task).await {
        Ok(joined) => joined.unwrap_or_else(|e| Err(join_fault(e))),
        Err(_) => Err(faults::service_missing(&format!(
            "the smart-card service (pcscd) did not answer within {} ms",
            millis(DIAGNOSTIC_TIMEOUT)
        ))),
    }
}

fn readers_blocking() -> Result<Vec<String>, Fault> {
    let ctx = Context::establish().map_err(establish_fault)?;
    Ok(reader_names(&ctx)?.iter().map(lossy).collect())
}

fn reader_statuses_blocking() -> Result<Vec<ReaderStatus>, Fault> {
    let ctx = Context::establish().map_err(establish_fault)?;
    let names = reader_names(&ctx)?;
    if names.is_empty() {
        return Ok(vec![]);
    }
    let mut states: Vec<ReaderState> = names
        .iter()
        .map(|n| ReaderState::new(n.clone(), State::UNAWARE))
        .collect();
    match ctx.get_status_change(Duration::ZERO, &mut states) {
        Ok(()) | Err(PcscError::Timeout) => {}
        Err(e) => return Err(list_fault(e)),
    }
    Ok(states
        .iter()
        .map(|s| {
            let st = s.event_state();
            ReaderStatus {
                name: s.name().to_string_lossy().into_owned(),
                card_present: st.contains(State::PRESENT),
                card_mute: st.contains(State::MUTE),
                in_use: st.contains(State::INUSE),
                exclusive: st.contains(State::EXCLUSIVE),
                unavailable: st.intersects(State::UNAVAILABLE | State::UNKNOWN),
            }
        })
        .collect())
}

pub(super) async fn readers() -> Result<Vec<String>, Fault> {
    diagnostic(readers_blocking).await
}

pub(super) async fn reader_statuses() -> Result<Vec<ReaderStatus>, Fault> {
    diagnostic(reader_statuses_blocking).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes::ErrorCode;

    #[test]
    fn the_reader_setting_is_a_case_insensitive_part_of_the_name() {
        let seen = vec![
            "Virtual PCD 00 00".to_string(),
            "Virtual PCD 00 01".to_string(),
            "ACS ACR38U 00 00".to_string(),
        ];
        assert_eq!(pick_reader(&seen, None), Some(0));
        assert_eq!(pick_reader(&seen, Some("acr38")), Some(2));
        assert_eq!(pick_reader(&seen, Some("PCD 00 01")), Some(1));
        assert_eq!(pick_reader(&seen, Some("Gemalto")), None);
        assert_eq!(pick_reader(&[], None), None);
    }

    #[test]
    fn pcsc_errors_map_to_the_standard_faults() {
        let f = establish_fault(PcscError::NoService);
        assert_eq!(
            (f.code, f.reason.as_str()),
            (ErrorCode::PRT_SETUP_ERROR, "smart-card-service-missing")
        );
        assert!(f.description.contains("pcscd"), "{}", f.description);
        let f = establish_fault(PcscError::NoLibrary);
        assert_eq!(
            (f.code, f.reason.as_str()),
            (ErrorCode::PRT_SETUP_ERROR, "smart-card-service-missing")
        );
        assert_eq!(
            f.description,
            "PC/SC library libpcsclite.so.1 not found: install pcscd and libpcsclite1"
        );
        let f = connect_fault(PcscError::UnpoweredCard, "R");
        assert_eq!(
            (f.code, f.reason.as_str()),
            (ErrorCode::PRD_SMARTCARD, "chip-error")
        );
        assert_eq!(
            f.description,
            "chip did not answer to reset (unresponsive card)"
        );
        assert_eq!(
            connect_fault(PcscError::UnresponsiveCard, "R").description,
            f.description
        );
        let f = connect_fault(PcscError::UnknownReader, "R");
        assert_eq!(
            (f.code, f.reason.as_str()),
            (ErrorCode::PRT_SETUP_ERROR, "smart-card-reader-missing")
        );
        let f = status_fault(PcscError::ServiceStopped, "R");
        assert_eq!(f.reason, "smart-card-service-missing");
        assert_eq!(link_error(PcscError::RemovedCard), LinkError::Removed);
        assert_eq!(link_error(PcscError::ResetCard), LinkError::Reset);
        assert_eq!(
            link_error(PcscError::UnresponsiveCard),
            LinkError::Unresponsive
        );
        assert_eq!(link_error(PcscError::NoService), LinkError::ServiceGone);
        assert_eq!(
            link_error(PcscError::ReaderUnavailable),
            LinkError::ReaderGone
        );
        assert_eq!(
            link_error(PcscError::CommError),
            LinkError::Comm("reader communication error")
        );
    }

    #[test]
    fn time_outs_name_the_phase() {
        let p = |phase| Progress {
            phase,
            budget: Duration::from_millis(5000),
        };
        assert_eq!(
            timeout_fault(p(Phase::Step(3)), 12).description,
            "chip did not answer within 5000 ms at step 3 of 12"
        );
        // (Another test may count a stuck session meanwhile: prefix only.)
        assert!(timeout_fault(p(Phase::Connecting), 12)
            .description
            .starts_with("chip did not answer to reset (no answer within 5000 ms)"));
        assert_eq!(
            timeout_fault(p(Phase::Starting), 12).reason,
            "smart-card-service-missing"
        );
        assert_eq!(
            timeout_fault(p(Phase::Waiting), 12).code,
            ErrorCode::PRT_SETUP_ERROR
        );
    }

    #[test]
    fn stuck_sessions_are_counted_until_they_end() {
        let before = STUCK_SESSIONS.load(Ordering::SeqCst);
        // Given up, then ends: counted in between.
        let fate = Fate::default();
        fate.abandon();
        assert!(fate.abandoned());
        assert_eq!(STUCK_SESSIONS.load(Ordering::SeqCst), before + 1);
        assert!(stuck_note().contains("still blocked"));
        fate.finish();
        assert_eq!(STUCK_SESSIONS.load(Ordering::SeqCst), before);
        // Ended just before the supervisor gave up: never counted.
        let fate = Fate::default();
        fate.finish();
        fate.abandon();
        assert!(!fate.abandoned());
        assert_eq!(STUCK_SESSIONS.load(Ordering::SeqCst), before);
    }

    #[tokio::test]
    async fn bad_and_empty_scripts_never_reach_pcsc() {
        let config = PcscConfig {
            reader: Some("no such reader".into()),
            card_wait_ms: 0,
            apdu_timeout_ms: 1,
        };
        let empty = personalise(&config, &ChipScript::default()).await.unwrap();
        assert_eq!(empty, ChipReport { steps_run: 0 });
        let bad = ChipScript {
            steps: vec![super::super::ApduStep::expecting_9000(vec![0x00, 0xA4])],
        };
        let f = personalise(&config, &bad).await.unwrap_err();
        assert_eq!(f.code, ErrorCode::PRD_UNEXPECTED_DATA);
        assert_eq!(
            f.description,
            "chip script step 1 of 1: the command is 2 bytes long, a command APDU has at least 4 (CLA INS P1 P2); nothing was sent to the card"
        );
    }
}
