//! The async shell around the firmware: one shared printer, any number of
//! links, timers for the mechanism, the customer, the scenario, the
//! `unreachable` condition and the firmware's own alarms (the end of a
//! `silent:ms` or of a `power-cycle`'s boot).
//!
//! Locking: the printer is behind a std mutex, held only for a `handle` call
//! or a snapshot, never across an `.await`. Mechanical commands also take an
//! async "mechanism" lock for the time they work, so a second link's card
//! command waits as it would on the real printer while reads, the control
//! socket and other links carry on.

use crate::chip::VpcdCard;
use crate::condition::Condition;
use crate::config::{Customer, SimConfig};
use crate::firmware::{Effect, Printer};
use crate::scenario::{Action, Trigger};
use crate::state::{Links, State};
use crate::transcript::{reply_is_card_data, show_frame, show_reply_of, Entry, Recorder};
use dialect::panel::Geometry;
use dialect::reply::encode_reply;
use dialect::{Inbound, Reply, Terminator};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::runtime::Handle;
use tokio::sync::watch;

/// A handle on the simulated printer; clones share it.
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Inner>,
}

struct Inner {
    printer: Mutex<Printer>,
    /// Held while a mechanical command works.
    mech: tokio::sync::Mutex<()>,
    chip: Option<VpcdCard>,
    start: Instant,
    terminator: Terminator,
    ack_terminated: bool,
    geometry: Geometry,
    /// `true` while the links are reachable.
    gate: watch::Sender<bool>,
    /// Bumped at every `unreachable`, so an old timer cannot bring a newer outage to an end.
    outage: AtomicU64,
    /// Bumped at every presentation, so an old customer timer cannot take a later card.
    presentation: AtomicU64,
    recorder: Option<Recorder>,
    links: Mutex<Links>,
    runtime: Handle,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not take the printer down with it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Simulator {
    /// Builds the simulator and starts the scenario's timers. Must be called
    /// inside a tokio runtime. A transcript file that cannot be created is
    /// logged and recording is off; use [`Simulator::try_new`] to get the error.
    pub fn new(config: SimConfig) -> Simulator {
        let recorder = match config.record.as_deref().map(Recorder::create).transpose() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot create the transcript file: recording is off");
                None
            }
        };
        Simulator::build(config, recorder)
    }

    /// Like [`Simulator::new`], failing when the transcript cannot be created.
    pub fn try_new(config: SimConfig) -> std::io::Result<Simulator> {
        let recorder = config.record.as_deref().map(Recorder::create).transpose()?;
        Ok(Simulator::build(config, recorder))
    }

    fn build(config: SimConfig, recorder: Option<Recorder>) -> Simulator {
        let (gate, _) = watch::channel(true);
        let sim = Simulator {
            inner: Arc::new(Inner {
                printer: Mutex::new(Printer::new(&config)),
                mech: tokio::sync::Mutex::new(()),
                chip: config.vpcd.map(VpcdCard::new),
                start: Instant::now(),
                terminator: config.reply_terminator,
                ack_terminated: config.ack_terminated,
                geometry: config.profile.geometry,
                gate,
                outage: AtomicU64::new(0),
                presentation: AtomicU64::new(0),
                recorder,
                links: Mutex::new(Links {
                    reachable: true,
                    ..Links::default()
                }),
                runtime: Handle::current(),
            }),
        };
        for entry in config.scenario.iter().flat_map(|s| s.entries.iter()) {
            if let Trigger::AfterMs(ms) = entry.trigger {
                let (sim, entry) = (sim.clone(), entry.clone());
                sim.inner.runtime.clone().spawn(async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    tracing::info!(entry = entry.index, after_ms = ms, "scenario entry fires");
                    match entry.action {
                        Action::Raise(c) => sim.raise(c),
                        Action::Clear(name) => sim.clear(name.as_deref()),
                    }
                });
            }
        }
        sim
    }

    fn now_ms(&self) -> u64 {
        self.inner.start.elapsed().as_millis() as u64
    }

    fn printer(&self) -> MutexGuard<'_, Printer> {
        lock(&self.inner.printer)
    }

    pub(crate) fn geometry(&self) -> Geometry {
        self.inner.geometry
    }

    /// Watches the links' reachability.
    pub(crate) fn gate(&self) -> watch::Receiver<bool> {
        self.inner.gate.subscribe()
    }

    pub(crate) fn set_link_path(&self, pty: Option<String>, tcp: Option<String>) {
        let mut l = lock(&self.inner.links);
        if pty.is_some() {
            l.pty = pty;
        }
        if tcp.is_some() {
            l.tcp = tcp;
        }
    }

    /// Handles one decoded frame end to end: firmware, mechanism time,
    /// effects, slow delay, transcript. `None`: nothing goes back.
    pub(crate) async fn exec(&self, inbound: Inbound) -> Option<Vec<u8>> {
        let mechanical = matches!(&inbound, Inbound::Command(c)
            if c.mnemonic != "Sk" && matches!(c.mnemonic.as_bytes().first(), Some(b'S' | b'X')));
        let mech = if mechanical {
            Some(self.inner.mech.lock().await)
        } else {
            None
        };
        let now = self.now_ms();
        let (shown, _) = show_frame(&inbound);
        let card_data = reply_is_card_data(&inbound);
        tracing::debug!(frame = %shown, "frame in");
        if let Some(r) = &self.inner.recorder {
            r.write(&Entry::incoming(now, &inbound));
        }
        let out = self.printer().handle(&inbound, now);
        // Link and chip-fault effects act at once; the card's arrival (chip,
        // bezel) only once the mechanism has done its work.
        let (later, now_effects): (Vec<Effect>, Vec<Effect>) =
            out.effects.into_iter().partition(|e| {
                matches!(
                    e,
                    Effect::ChipInsert { .. }
                        | Effect::ChipRemove { .. }
                        | Effect::Presented { .. }
                )
            });
        self.apply(now_effects);
        let Some(reply) = out.reply else {
            tracing::debug!(frame = %shown, "link down or printer off: no reply");
            self.apply_async(later).await;
            return None;
        };
        if out.work_ms > 0 {
            tokio::time::sleep(Duration::from_millis(out.work_ms)).await;
        }
        self.apply_async(later).await;
        drop(mech);
        if out.slow_ms > 0 {
            tokio::time::sleep(Duration::from_millis(out.slow_ms)).await;
        }
        if !self.printer().reply_stands(out.power_epoch) {
            tracing::debug!(frame = %shown, "the printer went off while working: no reply");
            return None;
        }
        let mut bytes = encode_reply(&reply, self.inner.terminator);
        if self.inner.ack_terminated && matches!(reply, Reply::Ack | Reply::Nack(_)) {
            bytes.push(self.inner.terminator.byte());
        }
        let (shown_reply, _) = show_reply_of(&reply, card_data);
        tracing::debug!(frame = %shown, reply = %shown_reply, "reply out");
        if let Some(r) = &self.inner.recorder {
            r.write(&Entry::outgoing(self.now_ms(), &reply, card_data));
        }
        Some(bytes)
    }

    /// Effects, with chip calls off the async threads (the chip may block on its socket).
    async fn apply_async(&self, effects: Vec<Effect>) {
        for e in effects {
            match (e, self.inner.chip.clone()) {
                (Effect::ChipInsert { card }, Some(chip)) => {
                    tracing::info!(card, "chip under the contacts");
                    let _ = tokio::task::spawn_blocking(move || chip.insert()).await;
                }
                (Effect::ChipRemove { card }, Some(chip)) => {
                    tracing::info!(card, "chip leaves the contacts");
                    if let Ok(stats) = tokio::task::spawn_blocking(move || {
                        chip.remove();
                        chip.stats()
                    })
                    .await
                    {
                        self.printer().set_card_chip(card, stats);
                    }
                }
                (e, _) => self.apply(vec![e]),
            }
        }
    }

    /// Effects from synchronous callers (control, API, timers).
    fn apply(&self, effects: Vec<Effect>) {
        for e in effects {
            match e {
                // The chip may block on its socket (up to ~0.7 s while pcscd
                // notices a card change): never on the caller's thread.
                Effect::ChipInsert { .. } => {
                    if let Some(chip) = self.inner.chip.clone() {
                        self.inner.runtime.spawn_blocking(move || chip.insert());
                    }
                }
                Effect::ChipRemove { card } => {
                    if let Some(chip) = self.inner.chip.clone() {
                        let sim = self.clone();
                        self.inner.runtime.spawn_blocking(move || {
                            chip.remove();
                            let stats = chip.stats();
                            sim.printer().set_card_chip(card, stats);
                        });
                    }
                }
                Effect::ChipFault(f) => {
                    if let Some(chip) = &self.inner.chip {
                        chip.set_fault(f);
                    }
                }
                Effect::Wake { after_ms, alarm } => {
                    let sim = self.clone();
                    self.inner.runtime.spawn(async move {
                        tokio::time::sleep(Duration::from_millis(after_ms)).await;
                        let effects = sim.printer().alarm(alarm, sim.now_ms());
                        sim.apply(effects);
                    });
                }
                Effect::LinkDown { ms } => self.link_down(ms),
                Effect::LinkUp => self.link_up(),
                Effect::Presented { card, take_after } => {
                    let epoch = self.inner.presentation.fetch_add(1, Ordering::SeqCst) + 1;
                    if let Some(ms) = take_after {
                        let sim = self.clone();
                        self.inner.runtime.spawn(async move {
                            // A person: not scaled by speed.
                            tokio::time::sleep(Duration::from_millis(ms)).await;
                            if sim.inner.presentation.load(Ordering::SeqCst) == epoch {
                                let (took, effects) =
                                    sim.printer().customer_take(card, sim.now_ms());
                                if took {
                                    tracing::info!(card, "the customer took the card");
                                }
                                sim.apply(effects);
                            }
                        });
                    }
                }
            }
        }
    }

    fn link_down(&self, ms: u64) {
        let outage = self.inner.outage.fetch_add(1, Ordering::SeqCst) + 1;
        tracing::warn!(ms, "links down (unreachable)");
        self.inner.gate.send_replace(false);
        lock(&self.inner.links).reachable = false;
        let sim = self.clone();
        self.inner.runtime.spawn(async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            if sim.inner.outage.load(Ordering::SeqCst) == outage {
                sim.clear(Some("unreachable"));
            }
        });
    }

    fn link_up(&self) {
        if !*self.inner.gate.borrow() {
            tracing::info!("links back");
        }
        lock(&self.inner.links).reachable = true;
        self.inner.gate.send_replace(true);
    }

    // ---- links ------------------------------------------------------------

    /// Serves the dialect on a new pseudo-terminal. Returns the path to open:
    /// `link` (a symlink, replaced if it exists) when given, else the slave
    /// path. After an outage a new pty comes up behind the same symlink.
    pub async fn serve_pty(&self, link: Option<&Path>) -> std::io::Result<PathBuf> {
        crate::link::pty::serve(self.clone(), link.map(Path::to_path_buf)).await
    }

    /// Serves the dialect on TCP, one connection at a time. Returns the bound
    /// address (port 0 picks one); after an outage it listens on the same port.
    pub async fn serve_tcp(&self, addr: SocketAddr) -> std::io::Result<SocketAddr> {
        crate::link::tcp::serve(self.clone(), addr).await
    }

    /// An in-process link. While the links are down it is closed at once.
    pub fn connect(&self) -> tokio::io::DuplexStream {
        let (client, server) = tokio::io::duplex(256 * 1024);
        if *self.inner.gate.borrow() {
            let sim = self.clone();
            self.inner.runtime.spawn(crate::link::serve_stream(
                sim,
                server,
                "in-process".to_string(),
            ));
        }
        client
    }

    /// Serves the JSON-lines control protocol on a Unix socket (a stale
    /// socket file at `path` is replaced).
    pub async fn serve_control(&self, path: &Path) -> std::io::Result<()> {
        crate::control::serve(self.clone(), path).await
    }

    // ---- control ----------------------------------------------------------

    pub fn raise(&self, c: Condition) {
        let effects = self.printer().raise(c, self.now_ms());
        self.apply(effects);
    }

    /// Clears one condition by name, or all (`None`). An unknown name is logged.
    pub fn clear(&self, c: Option<&str>) {
        if let Err(e) = self.try_clear(c) {
            tracing::warn!(error = %e, "clear");
        }
    }

    /// Like [`Simulator::clear`], with the error for an unknown name.
    pub fn try_clear(&self, c: Option<&str>) -> Result<(), String> {
        let effects = self.printer().clear(c, self.now_ms())?;
        self.apply(effects);
        Ok(())
    }

    /// Takes the presented card now; returns whether there was one.
    pub fn take(&self) -> bool {
        let (took, effects) = self.printer().take(self.now_ms());
        self.apply(effects);
        took
    }

    pub fn set_customer(&self, c: Customer) {
        let effects = self.printer().set_customer(c);
        self.apply(effects);
    }

    pub fn set_option(&self, name: &str, on: bool) -> Result<(), String> {
        self.printer().set_option(name, on)
    }

    pub fn set_serial(&self, serial: &str) {
        self.printer().set_serial(serial);
    }

    pub fn set_feeder(&self, n: u8, count: u32, card_type: Option<&str>) -> Result<(), String> {
        self.printer().set_feeder(n, count, card_type)
    }

    /// A technician loads a new ribbon (see `Printer::load_ribbon`).
    pub fn load_ribbon(&self, ribbon_type: &str, cards: u32) -> Result<(), String> {
        self.printer().load_ribbon(ribbon_type, cards)
    }

    /// A technician empties the reject box or the output hopper.
    pub fn empty_box(&self, which: &str) -> Result<(), String> {
        self.printer().empty_box(which)
    }

    pub fn state(&self) -> State {
        let mut s = self.printer().snapshot(self.now_ms());
        s.chip = self.inner.chip.as_ref().map(VpcdCard::stats);
        s.links = lock(&self.inner.links).clone();
        s
    }

    /// Writes the card's printed panels as PNG files in `dir`. A card without
    /// printed panels gives no file; an unknown card, or one too old for its
    /// images to be kept, is an error.
    pub fn dump_card(&self, card: u64, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        let found = self.printer().card_images(card);
        let Some((record, images)) = found else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no card #{card}"),
            ));
        };
        if images.is_empty() && !record.panels.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("card #{card}: its images are no longer kept"),
            ));
        }
        crate::dump::write_images(card, &images, self.inner.geometry, dir)
    }
}
