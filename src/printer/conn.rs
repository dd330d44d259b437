//! One open connection to a printer: the codec over a link, one command at a
//! time, with time-outs and resynchronisation.
//!
//! Results keep device answers apart from link trouble, as
//! `Result<Result<T, Fault>, LinkError>`: the outer error says the link itself
//! failed (nothing reliable was heard), the inner one that the printer answered
//! and refused.

use super::faults::{self, Classified, Native};
use super::gating;
use super::profile::{Profile, Timeouts};
use super::transport::{Endpoint, Link, SerialSettings};
use crate::codes::{ErrorCode, Fault};
use bytes::BytesMut;
use dialect::ops::Op;
use dialect::reply::{Reply, ReplyCodec};
use dialect::status::{parse_status_words, StatusWords};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::codec::Decoder;

/// The link failed: no usable answer came.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("printer not reachable: {0}")]
    NotReachable(String),
    #[error("{op}: no answer within {} ms", after.as_millis())]
    Timeout { op: String, after: Duration },
    #[error("{0}")]
    Garbled(Fault),
}

impl LinkError {
    /// The fault, marked uncertain: the printer may have done what it was
    /// asked, or not.
    pub fn to_fault(&self) -> Fault {
        match self {
            LinkError::NotReachable(d) => {
                Fault::new(ErrorCode::PRT_NOT_REACHABLE, "offline", d.clone())
            }
            LinkError::Timeout { .. } => {
                Fault::new(ErrorCode::PRT_TIMEOUT, "timed-out", self.to_string())
            }
            LinkError::Garbled(f) => f.clone(),
        }
        .uncertain()
    }
}

pub type Outcome<T> = Result<Result<T, Fault>, LinkError>;

/// What the printer says it is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    pub model: String,
    pub serial: String,
    pub firmware: String,
}

/// How to reach the printer and speak to it.
#[derive(Debug, Clone)]
pub struct LinkSettings {
    pub endpoint: Endpoint,
    pub serial: SerialSettings,
    pub ack_nack: bool,
    pub timeouts: Timeouts,
    /// Where every exchange is recorded (shared by reconnections).
    pub trace: super::trace::Trace,
    /// How often the monitor probes the link while it is idle.
    pub idle_probe: std::time::Duration,
}

impl LinkSettings {
    pub fn from_profile(endpoint: Endpoint, profile: &Profile) -> Self {
        LinkSettings {
            endpoint,
            serial: SerialSettings::from_profile(&profile.link),
            ack_nack: false,
            timeouts: profile.timeouts.clone(),
            trace: super::trace::Trace::default(),
            idle_probe: super::monitor::IDLE_PROBE,
        }
    }
}

pub struct Connection {
    link: Link,
    trace: super::trace::Trace,
    codec: ReplyCodec,
    buf: BytesMut,
    profile: Arc<Profile>,
    timeouts: Timeouts,
    ack_nack: bool,
    /// A late answer or noise may still be on its way: resynchronise first.
    out_of_step: bool,
    identity: Option<Identity>,
    /// `None` until tried; `Some(false)` when the firmware has no `Rst`:
    /// from the start when the profile says so, else learnt from an
    /// `ERR` answer (a firmware that turns out to lack it).
    status_supported: Option<bool>,
    /// Commands and probes in a row that got no answer at all: a serial
    /// printer switched off never closes the line, so silence is counted.
    unanswered: u32,
    /// The error-management mode the handshake set: a printer that answers
    /// another one has restarted and lost it.
    error_mode: u32,
    /// The last status words read, for the driver to publish.
    last_status: Option<StatusWords>,
    /// The printer showed it restarted (its `just_rebooted` flag, or its
    /// error mode fell back), for the driver to count.
    restart_seen: bool,
}

/// Commands (or resynchronisation probes) in a row left unanswered before
/// the link is declared down (`PRT_NOT_REACHABLE`) and reconnected.
pub const UNANSWERED_LIMIT: u32 = 2;

/// The first command of a handshake waits this long at most: a printer that
/// answers at all answers `Pem` at once, and a reconnection attempt on a
/// silent line must give up quickly so that the next one comes soon.
const HANDSHAKE_PROBE: Duration = Duration::from_millis(500);

/// Time allowed to open a TCP connection to a printer.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long the line must stay quiet before a resynchronisation probe.
const QUIET: Duration = Duration::from_millis(30);
/// Replies skipped while looking for the probe's answer.
const RESYNC_SKIP: usize = 16;

impl Connection {
    /// Opens the link and performs the handshake: host error management, then
    /// identity, checked against the profile.
    pub async fn open(
        settings: &LinkSettings,
        profile: Arc<Profile>,
    ) -> Outcome<(Connection, Identity)> {
        let usb = matches!(settings.endpoint, super::transport::Endpoint::Usb(_));
        let link = tokio::time::timeout(
            CONNECT_TIMEOUT,
            Link::open(
                &settings.endpoint,
                &settings.serial,
                profile.link.usb_reopen_before_read,
            ),
        )
        .await
        .map_err(|_| {
            LinkError::NotReachable(format!(
                "cannot open {}: no connection within {} s",
                settings.endpoint,
                CONNECT_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|e| LinkError::NotReachable(format!("cannot open {}: {e}", settings.endpoint)))?;
        Self::handshake(link, usb, settings, profile).await
    }

    /// The handshake over an already open link (in-process tests use this).
    pub async fn handshake(
        link: Link,
        usb: bool,
        settings: &LinkSettings,
        profile: Arc<Profile>,
    ) -> Outcome<(Connection, Identity)> {
        let terminator = if usb {
            profile.link.usb_reply_terminator
        } else {
            profile.link.reply_terminator
        };
        // A profile that says the firmware has no status words is believed
        // from the start: `Rst` is never sent to it.
        let status_supported = (!profile.commands.status_words).then_some(false);
        let mut c = Connection {
            link,
            // ACK/NACK decoding is on from the start when asked for: the reply to
            // `Pem` itself may already come as an ACK.
            codec: ReplyCodec::new(
                terminator.to_dialect(),
                settings.ack_nack,
                profile.link.max_reply_bytes,
            ),
            buf: BytesMut::with_capacity(4096),
            trace: settings.trace.clone(),
            profile,
            timeouts: settings.timeouts.clone(),
            ack_nack: settings.ack_nack,
            // Whatever a previous session left on the line is not ours.
            out_of_step: true,
            identity: None,
            status_supported,
            unanswered: 0,
            error_mode: 0,
            last_status: None,
            restart_seen: false,
        };
        // Host error management first; ACK/NACK is a second `Pem` on top of
        // it (the guide's list of values, not its bit table).
        let mode = c.profile.link.host_error_mode;
        c.error_mode = mode;
        // A silent line (printer off) fails this first command quickly.
        let command_timeout = c.timeouts.command;
        c.timeouts.command = command_timeout.min(HANDSHAKE_PROBE.as_millis() as u64);
        let first = c.run(&Op::SetErrorMode(mode)).await;
        c.timeouts.command = command_timeout;
        let first = first.map_err(|e| match e {
            LinkError::Timeout { .. } => LinkError::NotReachable(format!(
                "the printer does not answer (no reply to Pem within {} ms): switched off, or another device on {}",
                HANDSHAKE_PROBE.as_millis(),
                settings.endpoint
            )),
            e => e,
        })?;
        if let Err(f) = first {
            return Ok(Err(Fault::new(
                ErrorCode::PRT_SETUP_ERROR,
                "setup",
                format!(
                    "the printer refused host error management (Pem;{mode}): {}",
                    f.description
                ),
            )));
        }
        if settings.ack_nack {
            let ack = c.profile.link.ack_nack_mode;
            if let Err(f) = c.run(&Op::SetErrorMode(ack)).await? {
                return Ok(Err(Fault::new(
                    ErrorCode::PRT_SETUP_ERROR,
                    "setup",
                    format!(
                        "the printer refused the ACK/NACK protocol (Pem;{ack}): {}",
                        f.description
                    ),
                )));
            }
        }
        let model = match c.run(&Op::ReadModel).await? {
            Ok(m) => m,
            Err(f) => return Ok(Err(f)),
        };
        if model != c.profile.model.model_reply {
            return Ok(Err(Fault::new(
                ErrorCode::PRT_SETUP_ERROR,
                "setup",
                format!("the printer says it is {model:?}, but profile {} expects {:?}: check `model` in the configuration", c.profile.model.id, c.profile.model.model_reply),
            )));
        }
        let serial = match c.run(&Op::ReadSerial).await? {
            Ok(s) if !s.is_empty() => s,
            Ok(_) => {
                return Ok(Err(Fault::new(
                    ErrorCode::PRT_SETUP_ERROR,
                    "setup",
                    "the printer answered an empty serial number",
                )))
            }
            Err(f) => return Ok(Err(f)),
        };
        let firmware = match c.run(&Op::ReadFirmware).await? {
            Ok(f) => f,
            Err(f) => return Ok(Err(f)),
        };
        let id = Identity {
            model,
            serial,
            firmware,
        };
        c.identity = Some(id.clone());
        Ok(Ok((c, id)))
    }

    pub fn profile(&self) -> &Arc<Profile> {
        &self.profile
    }

    pub fn identity(&self) -> Option<&Identity> {
        self.identity.as_ref()
    }

    /// The status words read since the last call, if any.
    pub fn take_status(&mut self) -> Option<StatusWords> {
        self.last_status.take()
    }

    /// Whether the printer showed a restart since the last call.
    pub fn take_restart(&mut self) -> bool {
        std::mem::take(&mut self.restart_seen)
    }

    /// Whether this firmware answers `Rst` (`None` until asked).
    pub fn status_supported(&self) -> Option<bool> {
        self.status_supported
    }

    /// The error-management mode this connection set.
    pub fn error_mode(&self) -> u32 {
        self.error_mode
    }

    /// Sends one operation and returns its reply as the printer sent it.
    /// Silence is counted: after [`UNANSWERED_LIMIT`] commands or probes in
    /// a row without any answer, the link is down (`PRT_NOT_REACHABLE`).
    pub async fn exchange(&mut self, op: &Op) -> Result<Reply, LinkError> {
        let result = self.exchange_once(op).await;
        match &result {
            Err(LinkError::Timeout { op: what, after }) => {
                self.unanswered += 1;
                if self.unanswered >= UNANSWERED_LIMIT {
                    return Err(LinkError::NotReachable(format!(
                        "{what}: no answer within {} ms, and {} commands in a row unanswered: the printer is switched off or disconnected",
                        after.as_millis(),
                        self.unanswered
                    )));
                }
            }
            Err(_) => {}
            Ok(_) => self.unanswered = 0,
        }
        result
    }

    async fn exchange_once(&mut self, op: &Op) -> Result<Reply, LinkError> {
        let at = crate::time::now_rfc3339();
        let started = Instant::now();
        let result = self.exchange_untraced(op).await;
        let (reply, outcome) = match &result {
            Ok(r @ Reply::Malformed { .. }) => {
                (super::trace::shown(r, op.is_sensitive()), "unreadable")
            }
            Ok(r) => (super::trace::shown(r, op.is_sensitive()), "answered"),
            Err(LinkError::Timeout { .. }) => (String::new(), "timeout"),
            Err(e) => (e.to_string(), "link"),
        };
        self.trace.record(super::trace::Exchange {
            at,
            sent: op.name(),
            reply,
            ms: started.elapsed().as_millis() as u64,
            outcome,
        });
        result
    }

    async fn exchange_untraced(&mut self, op: &Op) -> Result<Reply, LinkError> {
        let command = op.command();
        let bytes = command.to_bytes().map_err(|e| {
            LinkError::Garbled(Fault::new(
                ErrorCode::PRD_UNEXPECTED_DATA,
                "other",
                format!("{}: {e}", op.name()),
            ))
        })?;
        let timeout = self.timeouts.for_class(op.timeout_class());
        if self.out_of_step || !self.buf.is_empty() {
            self.resync().await?;
        }
        tracing::trace!(op = %op.name(), "send");
        self.link
            .send(&bytes)
            .await
            .map_err(|e| LinkError::NotReachable(format!("{}: write failed: {e}", op.name())))?;
        match self.read_reply(Instant::now() + timeout).await {
            Ok(r) => {
                if matches!(r, Reply::Malformed { .. }) {
                    self.out_of_step = true;
                }
                Ok(r)
            }
            Err(LinkError::Timeout { .. }) => {
                self.out_of_step = true;
                Err(LinkError::Timeout {
                    op: op.name(),
                    after: timeout,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Runs an operation: its data on success, the mapped fault on refusal.
    /// An operation the profile says this firmware lacks is refused without
    /// being sent.
    pub async fn run(&mut self, op: &Op) -> Outcome<String> {
        if let Some(f) = gating::not_on_this_firmware(&self.profile, op) {
            return Ok(Err(f));
        }
        let reply = self.exchange(op).await?;
        match faults::classify(reply, op, &self.profile) {
            Classified::Success(t) => Ok(Ok(t)),
            Classified::Garbled { raw, why } => Err(LinkError::Garbled(faults::garbled(
                &op.name(),
                &raw,
                &why,
                op.is_sensitive(),
            ))),
            Classified::Failure(native) => Ok(Err(self.explain(op, &native).await?)),
        }
    }

    /// Runs operations in order, stopping at the first refusal.
    pub async fn run_all(&mut self, ops: impl IntoIterator<Item = Op>) -> Outcome<()> {
        for op in ops {
            if let Err(f) = self.run(&op).await? {
                return Ok(Err(f));
            }
        }
        Ok(Ok(()))
    }

    /// Maps a refusal, reading the status words when they can say more.
    async fn explain(&mut self, op: &Op, native: &Native) -> Result<Fault, LinkError> {
        let status = if faults::wants_status(&self.profile, native) {
            self.read_status().await?.ok()
        } else {
            None
        };
        let fault = faults::map_failure(
            &self.profile,
            &op.name(),
            native,
            status.as_ref(),
            op.is_sensitive(),
        );
        tracing::debug!(op = %op.name(), error_code = %fault.code, reason = %fault.reason, "printer refused");
        Ok(fault)
    }

    /// Reads the status words; `Ok(Err)` when the firmware has no `Rst` or
    /// answers it with something that is not status words.
    pub async fn read_status(&mut self) -> Result<Result<StatusWords, Fault>, LinkError> {
        if let Some(f) = gating::not_on_this_firmware(&self.profile, &Op::ReadStatus) {
            return Ok(Err(f));
        }
        if self.status_supported == Some(false) {
            return Ok(Err(Fault::new(
                ErrorCode::PRT_SETUP_ERROR,
                "unsupported",
                "this printer does not answer Rst",
            )));
        }
        let reply = self.exchange(&Op::ReadStatus).await?;
        match reply {
            Reply::Text(t) => match parse_status_words(&t) {
                Ok(s) => {
                    self.status_supported = Some(true);
                    if let Some(f) = self.profile.flag("just_rebooted") {
                        if s.bit(&f.word, f.bit) {
                            // Settings not saved are gone: this connection's
                            // handshake no longer holds.
                            self.restart_seen = true;
                            return Err(LinkError::NotReachable(
                                "the printer says it has just restarted: its settings are set again"
                                    .into(),
                            ));
                        }
                    }
                    self.last_status = Some(s.clone());
                    Ok(Ok(s))
                }
                Err(_) if t.starts_with("ERR") => {
                    self.status_supported = Some(false);
                    Ok(Err(Fault::new(
                        ErrorCode::PRT_SETUP_ERROR,
                        "unsupported",
                        format!(
                            "Rst: printer answered \"{}\"",
                            dialect::redact::mask_text(&t)
                        ),
                    )))
                }
                Err(why) => Err(LinkError::Garbled(Fault::new(
                    ErrorCode::PRD_UNEXPECTED_DATA,
                    "other",
                    format!("Rst: {}", dialect::redact::mask_text(&why)),
                ))),
            },
            Reply::Malformed { raw, why } => Err(LinkError::Garbled(faults::garbled(
                "Rst", &raw, &why, false,
            ))),
            other => Err(LinkError::Garbled(Fault::new(
                ErrorCode::PRD_UNEXPECTED_DATA,
                "other",
                format!("Rst: unexpected {other:?}"),
            ))),
        }
    }

    /// Whether the printer still runs in the error-management mode this
    /// connection set. A printer switched off and on falls back to its saved
    /// mode: the sign that it restarted without the line dropping.
    pub async fn restarted(&mut self) -> Result<bool, LinkError> {
        match self.read_text(&Op::ReadErrorMode).await? {
            // `Rem` answers the current mode first (some firmware adds the saved one).
            Ok(t) => {
                let current = t
                    .split(|c: char| c == ';' || c.is_whitespace())
                    .find(|w| !w.is_empty())
                    .and_then(|w| w.parse::<u32>().ok());
                let restarted = current.is_some_and(|m| m != self.error_mode);
                self.restart_seen |= restarted;
                Ok(restarted)
            }
            // A firmware without `Rem`: nothing to compare.
            Err(_) => Ok(false),
        }
    }

    async fn read_reply(&mut self, deadline: Instant) -> Result<Reply, LinkError> {
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(r) = self
                .codec
                .decode(&mut self.buf)
                .map_err(|e| LinkError::NotReachable(e.to_string()))?
            {
                return Ok(r);
            }
            match tokio::time::timeout_at(deadline, self.link.recv(&mut chunk)).await {
                Err(_) => {
                    return match self.read_on_the_line(&mut chunk)? {
                        Some(r) => {
                            tracing::info!(
                                overdue_ms = Instant::now().saturating_duration_since(deadline).as_millis() as u64,
                                "the answer was on the line when its time-out fell due (the agent was frozen?): taken"
                            );
                            Ok(r)
                        }
                        None => Err(LinkError::Timeout {
                            op: String::new(),
                            after: Duration::ZERO,
                        }),
                    }
                }
                Ok(Ok(0)) => {
                    self.buf.clear();
                    return Err(LinkError::NotReachable(
                        "the printer closed the link".into(),
                    ));
                }
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
                Ok(Err(e)) => return Err(LinkError::NotReachable(format!("read failed: {e}"))),
            }
        }
    }

    /// The last look before a time-out is declared: what the line already
    /// holds, read without waiting, decoded. The deadline is measured on a
    /// clock that runs on while the agent cannot (SIGSTOP, a VM pause, a
    /// clock that jumps on resume): an answer that came meanwhile was in
    /// time, and is taken. Without this, the reactor, which learns of it only
    /// at its next turn, lost the race to the timer and a good card was
    /// rejected as PRT_TIMEOUT.
    fn read_on_the_line(&mut self, chunk: &mut [u8]) -> Result<Option<Reply>, LinkError> {
        // Bounded: a line that keeps streaming noise cannot hold the agent
        // here (the codec ends an oversized reply as malformed anyway).
        for _ in 0..64 {
            match self.link.read_now(chunk) {
                Ok(None) => return Ok(None),
                Ok(Some(0)) => {
                    self.buf.clear();
                    return Err(LinkError::NotReachable(
                        "the printer closed the link".into(),
                    ));
                }
                Ok(Some(n)) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(LinkError::NotReachable(format!("read failed: {e}"))),
            }
            if let Some(r) = self
                .codec
                .decode(&mut self.buf)
                .map_err(|e| LinkError::NotReachable(e.to_string()))?
            {
                return Ok(Some(r));
            }
        }
        Ok(None)
    }

    /// Brings the link back in step after a time-out or noise: waits for the line
    /// to go quiet, discards what came, then asks for the serial number and skips
    /// replies until the one it knows comes back. Every probe sent and not yet
    /// answered is counted, so that a probe's late answer is never taken for the
    /// answer of a later command.
    async fn resync(&mut self) -> Result<(), LinkError> {
        // Draining may take a while (a printer still finishing a long
        // operation, or streaming noise)...
        let drain = Duration::from_millis(self.timeouts.command.saturating_mul(3).max(2_000));
        let deadline = Instant::now() + drain;
        let mut chunk = [0u8; 4096];
        loop {
            match tokio::time::timeout(QUIET, self.link.recv(&mut chunk)).await {
                Err(_) => break,
                Ok(Ok(0)) => {
                    return Err(LinkError::NotReachable(
                        "the printer closed the link".into(),
                    ))
                }
                Ok(Ok(_)) if Instant::now() < deadline => continue,
                Ok(Ok(_)) => {
                    return Err(LinkError::Timeout {
                        op: "resynchronisation".into(),
                        after: drain,
                    })
                }
                Ok(Err(e)) => return Err(LinkError::NotReachable(format!("read failed: {e}"))),
            }
        }
        if !self.buf.is_empty() {
            tracing::debug!(
                bytes = self.buf.len(),
                "discarding stale bytes from the printer"
            );
        }
        self.buf.clear();
        self.codec = ReplyCodec::new(
            self.codec.terminator(),
            self.ack_nack,
            self.profile.link.max_reply_bytes,
        );
        let Some(id) = self.identity.clone() else {
            self.out_of_step = false;
            return Ok(());
        };
        // ...but each probe waits one command's time-out only: a printer that
        // was switched off and on during the first probe (and so lost it)
        // answers the second at once. The two probes ask different things
        // (serial number, then firmware or model), and a printer answers in
        // order: once the second probe's own answer comes, every earlier
        // answer has come or was lost, so no late one can be taken for the
        // next command's.
        let wait = Duration::from_millis(self.timeouts.command.max(500));
        let second = [
            (Op::ReadFirmware, id.firmware.clone()),
            (Op::ReadModel, id.model.clone()),
        ]
        .into_iter()
        .find(|(_, answer)| *answer != id.serial && !answer.is_empty());
        let mut probes = vec![(Op::ReadSerial, id.serial.clone())];
        probes.extend(second);
        let mut skipped = 0;
        for (i, (op, answer)) in probes.iter().enumerate() {
            let last = i + 1 == probes.len();
            let bytes = op.command().to_bytes().expect("static command");
            self.link
                .send(&bytes)
                .await
                .map_err(|e| LinkError::NotReachable(format!("write failed: {e}")))?;
            let until = Instant::now() + wait;
            loop {
                match self.read_reply(until).await {
                    Ok(Reply::Text(t)) if t == *answer => {
                        self.out_of_step = false;
                        return Ok(());
                    }
                    Ok(_) => {
                        skipped += 1;
                        if skipped > RESYNC_SKIP {
                            return Err(LinkError::Garbled(Fault::new(
                                ErrorCode::PRD_UNEXPECTED_DATA,
                                "other",
                                format!("the printer kept answering something else than its identity for {RESYNC_SKIP} replies"),
                            )));
                        }
                    }
                    Err(LinkError::Timeout { .. }) if !last => break,
                    // Neither probe answered: the printer is not answering
                    // commands. Reconnecting starts from a clean line.
                    Err(LinkError::Timeout { .. }) => {
                        return Err(LinkError::NotReachable(format!(
                            "resynchronisation: no answer to {} probes within {} ms each: the printer is switched off or disconnected",
                            probes.len(),
                            wait.as_millis()
                        )))
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        // Only reached with no probe to send.
        Err(LinkError::NotReachable(
            "resynchronisation: no probe answered".into(),
        ))
    }
}

impl Connection {
    /// Reads one operation's text without mapping it (for replies whose `ERR`
    /// prefix is data, such as `Rlr;r` answering `ERR NEED CLEANING`).
    pub async fn read_text(&mut self, op: &Op) -> Outcome<String> {
        if let Some(f) = gating::not_on_this_firmware(&self.profile, op) {
            return Ok(Err(f));
        }
        match self.exchange(op).await? {
            Reply::Text(t) => Ok(Ok(t)),
            Reply::Ack => Ok(Ok(String::new())),
            Reply::Nack(c) => Ok(Err(self.explain(op, &Native::Nack(c)).await?)),
            Reply::Malformed { raw, why } => Err(LinkError::Garbled(faults::garbled(
                &op.name(),
                &raw,
                &why,
                op.is_sensitive(),
            ))),
        }
    }

    /// Sends a technician's command and returns the reply as text, mapped
    /// fault included when the reply is an error word.
    pub async fn raw(
        &mut self,
        command: dialect::Command,
    ) -> Result<(String, Option<Fault>), LinkError> {
        let op = Op::Raw(command);
        match self.exchange(&op).await? {
            Reply::Text(t) => {
                let fault = match faults::classify(Reply::Text(t.clone()), &op, &self.profile) {
                    Classified::Failure(n) => Some(self.explain(&op, &n).await?),
                    _ => None,
                };
                Ok((t, fault))
            }
            Reply::Ack => Ok(("<ACK>".into(), None)),
            Reply::Nack(c) => {
                let f = self.explain(&op, &Native::Nack(c)).await?;
                Ok((format!("<NACK {}>", c as char), Some(f)))
            }
            Reply::Malformed { raw, why } => Err(LinkError::Garbled(faults::garbled(
                &op.name(),
                &raw,
                &why,
                false,
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The connection against a scripted device on an in-process stream: the
    //! few behaviours the simulator cannot be made to show (a reply word no
    //! table knows, bytes no printer sends). The simulator covers the rest.
    use super::*;
    use crate::printer::transport::Link;
    use dialect::inbound::{CommandCodec, Inbound};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A device that answers each command with `answer(mnemonic)` bytes.
    fn device(answer: fn(&str) -> Vec<u8>) -> (Link, tokio::task::JoinHandle<Vec<String>>) {
        let (host, mut dev) = tokio::io::duplex(1 << 16);
        let task = tokio::spawn(async move {
            let mut codec = CommandCodec::new(dialect::panel::Geometry::default());
            let mut buf = BytesMut::new();
            let mut seen = Vec::new();
            let mut chunk = [0u8; 1024];
            loop {
                while let Some(item) = codec.decode(&mut buf).unwrap() {
                    if let Inbound::Command(c) = item {
                        seen.push(c.display_redacted());
                        if dev.write_all(&answer(&c.mnemonic)).await.is_err() {
                            return seen;
                        }
                    }
                }
                match dev.read(&mut chunk).await {
                    Ok(0) | Err(_) => return seen,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
        });
        (Link::from_stream(host), task)
    }

    fn normal(m: &str) -> Vec<u8> {
        match m {
            "Rtp" => b"KM500B\r".to_vec(),
            "Rsn" => b"SN1\r".to_vec(),
            "Rfv" => b"1.2.3\r".to_vec(),
            "Rst" => b"CFG=00000000 INF=00000000 WAR=00000000 ERR=00000000\r".to_vec(),
            "Si" => b"ERROR FLUX CAPACITOR 4000001234567899\r".to_vec(),
            "Rco" => vec![b'9'; 4000],
            "Rse" => b"4.9\x00\x00\r".to_vec(),
            _ => b"OK\r".to_vec(),
        }
    }

    async fn open(
        answer: fn(&str) -> Vec<u8>,
    ) -> (Connection, tokio::task::JoinHandle<Vec<String>>) {
        let profile = Arc::new(Profile::load("evolis-km500b", None).unwrap());
        let mut settings =
            LinkSettings::from_profile(Endpoint::Tcp("in-process:0".into()), &profile);
        settings.timeouts.command = 300;
        let (link, task) = device(answer);
        let (conn, id) = Connection::handshake(link, false, &settings, profile)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            id,
            Identity {
                model: "KM500B".into(),
                serial: "SN1".into(),
                firmware: "1.2.3".into()
            }
        );
        (conn, task)
    }

    #[tokio::test]
    async fn handshake_sets_host_mode_first() {
        let (conn, task) = open(normal).await;
        drop(conn);
        assert_eq!(task.await.unwrap(), ["Pem;2", "Rtp", "Rsn", "Rfv"]);
    }

    #[tokio::test]
    async fn an_unknown_answer_is_an_unknown_error_with_the_answer_kept_masked() {
        let (mut conn, _task) = open(normal).await;
        let f = conn.run(&Op::Insert).await.unwrap().unwrap_err();
        assert_eq!(f.code, ErrorCode::UNKNOWN_ERROR);
        assert!(
            f.description
                .contains("ERROR FLUX CAPACITOR 400000******7899"),
            "{}",
            f.description
        );
    }

    #[tokio::test]
    async fn oversized_and_nul_answers_are_unexpected_data_and_do_not_hang() {
        let (mut conn, _task) = open(normal).await;
        let e = conn
            .run(&Op::ReadCounter(dialect::ops::Counter::InsertedCards))
            .await
            .unwrap_err();
        assert_eq!(e.to_fault().code, ErrorCode::PRD_UNEXPECTED_DATA, "{e}");
        let e = conn
            .run(&Op::ReadSensor(dialect::ops::Sensor::Cover))
            .await
            .unwrap_err();
        assert_eq!(e.to_fault().code, ErrorCode::PRD_UNEXPECTED_DATA, "{e}");
        // And the link is usable again.
        assert_eq!(conn.run(&Op::ReadModel).await.unwrap().unwrap(), "KM500B");
    }

    /// A device on a socket pair, played by a thread of its own (so that it
    /// answers while the test's runtime is blocked): the link is a real
    /// descriptor driven by tokio's reactor, as a serial line is.
    fn fd_device(answer: fn(&str) -> Vec<u8>) -> Link {
        use std::io::{Read, Write};
        let (host, mut dev) = std::os::unix::net::UnixStream::pair().unwrap();
        std::thread::spawn(move || {
            let mut codec = CommandCodec::new(dialect::panel::Geometry::default());
            let mut buf = BytesMut::new();
            let mut chunk = [0u8; 1024];
            loop {
                while let Some(item) = codec.decode(&mut buf).unwrap() {
                    if let Inbound::Command(c) = item {
                        if dev.write_all(&answer(&c.mnemonic)).is_err() {
                            return;
                        }
                    }
                }
                match dev.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
        });
        let stream =
            crate::printer::transport::FdStream::new(std::os::fd::OwnedFd::from(host)).unwrap();
        Link::from_descriptor(stream)
    }

    /// The agent frozen (SIGSTOP, a VM pause) past a command's deadline while
    /// the answer came: on waking, the reactor has not been told yet that the
    /// line is readable (`epoll_wait` ends with EINTR, no events), and the
    /// deadline is already past. The answer on the line wins.
    #[tokio::test(flavor = "current_thread")]
    async fn an_answer_already_on_the_line_wins_over_a_deadline_already_past() {
        let profile = Arc::new(Profile::load("evolis-km500b", None).unwrap());
        let mut settings =
            LinkSettings::from_profile(Endpoint::Tcp("in-process:0".into()), &profile);
        settings.timeouts.command = 300;
        let link = fd_device(normal);
        let (mut conn, _) = Connection::handshake(link, false, &settings, profile)
            .await
            .unwrap()
            .unwrap();
        let long_ago = Instant::now();
        // A read that finds nothing: the reactor's readiness is cleared, as
        // on a line that was quiet when the command went out.
        let quiet = conn
            .read_reply(Instant::now() + Duration::from_millis(50))
            .await;
        assert!(matches!(quiet, Err(LinkError::Timeout { .. })), "{quiet:?}");
        let bytes = Op::ReadSerial.command().to_bytes().unwrap();
        conn.link.send(&bytes).await.unwrap();
        // Frozen: the thread blocks, so the runtime's reactor does not run
        // while the device answers.
        std::thread::sleep(Duration::from_millis(200));
        let reply = conn.read_reply(long_ago).await;
        assert_eq!(reply, Ok(Reply::Text("SN1".into())));
    }

    #[tokio::test]
    async fn a_printer_that_says_nothing_is_a_timeout() {
        let (mut conn, _task) = open(|m| if m == "Sis" { Vec::new() } else { normal(m) }).await;
        let e = conn.run(&Op::ToSmartStation).await.unwrap_err();
        assert_eq!(e.to_fault().code, ErrorCode::PRT_TIMEOUT, "{e}");
    }
}
