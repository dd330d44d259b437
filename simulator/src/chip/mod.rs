//! The card's chip, played for the kiosk's PC/SC reader.
//!
//! [`VpcdCard`] connects to pcscd's vpcd driver (Debian `vsmartcard-vpcd`,
//! `/etc/reader.conf.d/vpcd`: port 35963 is reader "Virtual PCD 00 00", port
//! 35964 "Virtual PCD 00 01") while the card sits under the contacts; pcscd
//! sees a card inserted while the connection lasts. See [`answer`] for what
//! the card says.
//!
//! pcscd learns of insertions and removals by polling vpcd about every 400 ms,
//! so a card that left connects again no sooner than [`MIN_AWAY`] later:
//! pcscd must see it gone first, or it keeps a stale state (a physical card
//! cannot come back faster either).
//!
//! The card keeps counts and the last status word, never APDU contents: they
//! are card data.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

pub mod answer;

/// How long a connection attempt to vpcd may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The shortest time between a card leaving a vpcd slot and a card (this one
/// or another `VpcdCard` on the same address) connecting to it: more than
/// pcscd's 400 ms presence poll, so that pcscd sees the slot empty in between.
pub const MIN_AWAY: Duration = Duration::from_millis(700);

/// When a card last left each vpcd address (the slot, whichever `VpcdCard`
/// played it).
static LEFT: Mutex<Vec<(SocketAddr, Instant)>> = Mutex::new(Vec::new());

fn note_left(addr: SocketAddr) {
    let mut left = LEFT.lock().unwrap_or_else(|p| p.into_inner());
    left.retain(|(a, t)| *a != addr && t.elapsed() < MIN_AWAY);
    left.push((addr, Instant::now()));
}

/// Which card plays each vpcd address in this process: one slot holds one
/// card.
static OCCUPANTS: Mutex<Vec<(SocketAddr, Weak<Shared>)>> = Mutex::new(Vec::new());

/// Makes `me` the card of its slot and takes out any other card still there
/// (a card kept alive past its owner, as a lingering simulator would do).
fn claim_slot(me: &Arc<Shared>) {
    let others: Vec<Arc<Shared>> = {
        let mut occupants = OCCUPANTS.lock().unwrap_or_else(|p| p.into_inner());
        occupants.retain(|(_, w)| w.strong_count() > 0);
        let others = occupants
            .iter()
            .filter(|(a, w)| *a == me.addr && !std::ptr::eq(w.as_ptr(), Arc::as_ptr(me)))
            .filter_map(|(_, w)| w.upgrade())
            .collect();
        occupants.retain(|(a, _)| *a != me.addr);
        occupants.push((me.addr, Arc::downgrade(me)));
        others
    };
    for other in others {
        let in_station = {
            let st = other.lock();
            st.in_station || st.stats.inserted
        };
        if in_station {
            tracing::warn!(addr = %me.addr, "another virtual card was still in this vpcd slot: it is taken out");
            other.remove();
        }
    }
}

/// How long a card must still wait before connecting to `addr`.
fn still_away(addr: SocketAddr) -> Duration {
    let left = LEFT.lock().unwrap_or_else(|p| p.into_inner());
    left.iter()
        .filter(|(a, _)| *a == addr)
        .map(|(_, t)| MIN_AWAY.saturating_sub(t.elapsed()))
        .max()
        .unwrap_or_default()
}
/// When the connection ends while the card stays under the contacts (pcscd
/// restarted, or the mute card hung up on an APDU), the card connects again
/// after [`MIN_AWAY`], then retries this many times, this far apart.
const RECONNECT_RETRIES: u32 = 15;
const RECONNECT_PAUSE: Duration = Duration::from_millis(200);

/// How the chip misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum ChipFault {
    #[default]
    None,
    /// No answer to reset, no answer to APDUs.
    Mute,
    /// Every APDU answers this status word.
    Status(u16),
}

/// What the chip has seen (no APDU content: it is card data).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ChipStats {
    /// Connected to vpcd: pcscd can see the card.
    pub inserted: bool,
    /// Connections to vpcd (one per insertion, plus reconnections after the
    /// connection ended while the card stayed under the contacts).
    pub sessions: u64,
    /// APDUs received (reader controls such as get-ATR polls not counted).
    pub apdus: u64,
    pub last_sw: Option<u16>,
}

/// A virtual card behind pcscd's vpcd driver: connected while the card sits
/// under the contacts of the smart station.
///
/// Clones share the card; dropping the last clone removes it.
#[derive(Clone)]
pub struct VpcdCard {
    shared: Arc<Shared>,
    _owner: Arc<Owner>,
}

impl std::fmt::Debug for VpcdCard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VpcdCard")
            .field("addr", &self.shared.addr)
            .field("stats", &self.stats())
            .finish()
    }
}

struct Shared {
    addr: SocketAddr,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    fault: ChipFault,
    stats: ChipStats,
    /// Under the contacts (inserted and not removed).
    in_station: bool,
    /// Bumped by every insert and remove: a serving task of another
    /// generation no longer owns the card.
    generation: u64,
    task: Option<JoinHandle<()>>,
}

impl State {
    fn disconnected(&mut self, addr: SocketAddr) {
        if self.stats.inserted {
            note_left(addr);
        }
        self.stats.inserted = false;
    }
}

/// Removes the card when the last `VpcdCard` clone goes.
struct Owner(Arc<Shared>);

impl Drop for Owner {
    fn drop(&mut self) {
        self.0.remove();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn remove(&self) {
        let mut st = self.lock();
        st.generation += 1;
        st.in_station = false;
        st.disconnected(self.addr);
        if let Some(task) = st.task.take() {
            task.abort();
        }
    }

    fn current(&self, generation: u64) -> bool {
        self.lock().generation == generation
    }

    /// The serving task of `generation` lost its connection.
    fn connection_ended(&self, generation: u64) {
        let mut st = self.lock();
        if st.generation == generation {
            st.disconnected(self.addr);
        }
    }

    /// The serving task of `generation` gives up: the card is out.
    fn gave_up(&self, generation: u64) {
        let mut st = self.lock();
        if st.generation == generation {
            st.disconnected(self.addr);
            st.in_station = false;
            st.task = None;
        }
    }

    /// A connection of `generation` is up: counts it, unless the card has
    /// been removed (or inserted again) meanwhile.
    fn connected(&self, generation: u64) -> bool {
        let mut st = self.lock();
        if st.generation != generation {
            return false;
        }
        st.stats.inserted = true;
        st.stats.sessions += 1;
        true
    }

    fn react(&self, message: &[u8]) -> answer::Reaction {
        let mut st = self.lock();
        let reaction = answer::react(st.fault, message);
        if reaction.apdu {
            st.stats.apdus += 1;
        }
        if reaction.sw.is_some() {
            st.stats.last_sw = reaction.sw;
        }
        reaction
    }
}

impl VpcdCard {
    pub fn new(addr: SocketAddr) -> Self {
        let shared = Arc::new(Shared {
            addr,
            state: Mutex::new(State::default()),
        });
        VpcdCard {
            _owner: Arc::new(Owner(shared.clone())),
            shared,
        }
    }

    /// The card arrived under the contacts: connect to vpcd and answer the reader.
    ///
    /// The connection is made before this returns (the card's task then
    /// answers the reader in the background), so `stats().inserted` is true
    /// at once when vpcd is there; otherwise a warning is logged and the card
    /// stays out. A card that left less than [`MIN_AWAY`] ago first waits for
    /// the rest of that time: this call may block for up to [`MIN_AWAY`] plus
    /// a connection time-out, so call it off the async threads
    /// (`spawn_blocking`). Inserting a card already in does nothing. Needs a
    /// tokio runtime (with I/O), where the card's task runs.
    pub fn insert(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(addr = %self.shared.addr, "virtual card not inserted: no tokio runtime to serve it");
            return;
        };
        {
            let st = self.shared.lock();
            if st.in_station && st.task.as_ref().is_some_and(|t| !t.is_finished()) {
                return;
            }
        }
        claim_slot(&self.shared);
        let (generation, away) = {
            let mut st = self.shared.lock();
            st.generation += 1;
            if let Some(old) = st.task.take() {
                old.abort();
            }
            (st.generation, still_away(self.shared.addr))
        };
        if !away.is_zero() {
            tracing::debug!(addr = %self.shared.addr, ?away, "virtual card back soon after leaving: waiting for pcscd to see it gone");
            std::thread::sleep(away);
            if !self.shared.current(generation) {
                return;
            }
        }
        let connected = connect_now(self.shared.addr);
        let mut st = self.shared.lock();
        if st.generation != generation {
            // Removed (or inserted again) meanwhile.
            return;
        }
        match connected {
            Ok(stream) => {
                st.in_station = true;
                st.stats.inserted = true;
                st.stats.sessions += 1;
                st.task = Some(runtime.spawn(serve(self.shared.clone(), generation, stream)));
                tracing::debug!(addr = %self.shared.addr, "virtual card inserted");
            }
            Err(e) => {
                tracing::warn!(addr = %self.shared.addr, error = %e, "virtual card not inserted: vpcd (pcscd) is not reachable");
            }
        }
    }

    /// The card left the station: disconnect.
    pub fn remove(&self) {
        self.shared.remove();
        tracing::debug!(addr = %self.shared.addr, "virtual card removed");
    }

    /// Takes effect from the next message of the reader. A card made mute
    /// while pcscd has it powered hangs up on the next APDU and comes back
    /// mute: its power-up fails.
    pub fn set_fault(&self, fault: ChipFault) {
        self.shared.lock().fault = fault;
    }

    pub fn stats(&self) -> ChipStats {
        self.shared.lock().stats.clone()
    }
}

fn connect_now(addr: SocketAddr) -> std::io::Result<std::net::TcpStream> {
    let stream = std::net::TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
    stream.set_nodelay(true)?;
    stream.set_nonblocking(true)?;
    Ok(stream)
}

/// One connection attempt for `generation`, counted when it succeeds.
async fn connect_again(shared: &Shared, generation: u64) -> std::io::Result<Option<TcpStream>> {
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(shared.addr)).await
    {
        Ok(s) => s?,
        Err(_) => return Err(std::io::ErrorKind::TimedOut.into()),
    };
    let _ = stream.set_nodelay(true);
    Ok(shared.connected(generation).then_some(stream))
}

/// Serves the reader until removal; reconnects when the connection ends while
/// the card stays under the contacts.
async fn serve(shared: Arc<Shared>, generation: u64, first: std::net::TcpStream) {
    let mut stream = match TcpStream::from_std(first) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(addr = %shared.addr, error = %e, "virtual card cannot use its connection");
            shared.gave_up(generation);
            return;
        }
    };
    loop {
        match exchange(&shared, &mut stream).await {
            Ended::HungUp => tracing::debug!("the mute virtual card hung up"),
            Ended::Closed(e) => {
                tracing::debug!(error = %e, "vpcd closed the virtual card's connection")
            }
        }
        drop(stream);
        shared.connection_ended(generation);
        match reconnect(&shared, generation).await {
            Some(s) => stream = s,
            None => {
                if shared.current(generation) {
                    tracing::warn!(addr = %shared.addr, "vpcd is not reachable again: the virtual card is out");
                }
                shared.gave_up(generation);
                return;
            }
        }
    }
}

async fn reconnect(shared: &Shared, generation: u64) -> Option<TcpStream> {
    tokio::time::sleep(MIN_AWAY).await;
    for attempt in 0..=RECONNECT_RETRIES {
        if attempt > 0 {
            tokio::time::sleep(RECONNECT_PAUSE).await;
        }
        if !shared.current(generation) {
            return None;
        }
        match connect_again(shared, generation).await {
            Ok(s) => return s,
            Err(e) => tracing::debug!(error = %e, attempt, "virtual card cannot reconnect yet"),
        }
    }
    None
}

/// Why a connection to vpcd ended.
enum Ended {
    /// The mute card hung up on an APDU.
    HungUp,
    /// vpcd closed it, or it failed.
    Closed(std::io::Error),
}

/// Answers vpcd's messages until the connection ends.
async fn exchange(shared: &Shared, stream: &mut TcpStream) -> Ended {
    let mut len = [0u8; 2];
    loop {
        if let Err(e) = stream.read_exact(&mut len).await {
            return Ended::Closed(e);
        }
        ack_now(stream);
        let mut message = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if let Err(e) = stream.read_exact(&mut message).await {
            return Ended::Closed(e);
        }
        let reaction = shared.react(&message);
        message.fill(0);
        if let Some(mut reply) = reaction.reply {
            let n = u16::try_from(reply.len()).unwrap_or(u16::MAX);
            let mut frame = Vec::with_capacity(2 + reply.len());
            frame.extend_from_slice(&n.to_be_bytes());
            frame.extend_from_slice(&reply[..usize::from(n)]);
            reply.fill(0);
            let sent = stream.write_all(&frame).await;
            frame.fill(0);
            if let Err(e) = sent {
                return Ended::Closed(e);
            }
        }
        if reaction.hang_up {
            return Ended::HungUp;
        }
    }
}

/// Acknowledges what vpcd sent at once. vpcd (Debian 3.3) sends a message's
/// length and its body in two `send` calls without TCP_NODELAY: Nagle's
/// algorithm holds the body until the length is acknowledged, and Linux
/// delays that acknowledgement by about 40 ms, for every message. TCP_QUICKACK
/// sends the pending acknowledgement now (it does not stay set, hence a call
/// per message).
#[cfg(target_os = "linux")]
fn ack_now(stream: &TcpStream) {
    if let Err(error) = socket2::SockRef::from(stream).set_tcp_quickack(true) {
        tracing::trace!(%error, "TCP_QUICKACK refused");
    }
}

#[cfg(not(target_os = "linux"))]
fn ack_now(_stream: &TcpStream) {}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// Plays vpcd's side of one connection.
    struct FakeVpcd {
        stream: TcpStream,
    }

    impl FakeVpcd {
        async fn send(&mut self, message: &[u8]) {
            let mut frame = (message.len() as u16).to_be_bytes().to_vec();
            frame.extend_from_slice(message);
            self.stream.write_all(&frame).await.unwrap();
        }
        async fn recv(&mut self) -> Vec<u8> {
            let mut len = [0u8; 2];
            self.stream.read_exact(&mut len).await.unwrap();
            let mut m = vec![0u8; usize::from(u16::from_be_bytes(len))];
            self.stream.read_exact(&mut m).await.unwrap();
            m
        }
        async fn ask(&mut self, message: &[u8]) -> Vec<u8> {
            self.send(message).await;
            self.recv().await
        }
    }

    async fn accept(listener: &TcpListener) -> FakeVpcd {
        let (stream, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
            .await
            .unwrap()
            .unwrap();
        FakeVpcd { stream }
    }

    #[tokio::test]
    async fn answers_the_reader_and_counts_apdus() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let card = VpcdCard::new(listener.local_addr().unwrap());
        card.insert();
        assert!(card.stats().inserted);
        let mut vpcd = accept(&listener).await;
        vpcd.send(&[answer::CTRL_POWER_ON]).await;
        assert_eq!(
            vpcd.ask(&[answer::CTRL_GET_ATR]).await,
            answer::ATR.to_vec()
        );
        assert_eq!(
            vpcd.ask(&[0x80, 0xE2, 0x00, 0x00, 0x01, 0x55]).await,
            vec![0x90, 0x00]
        );
        card.set_fault(ChipFault::Status(0x6A80));
        assert_eq!(
            vpcd.ask(&[0x80, 0xE2, 0x00, 0x01, 0x01, 0x55]).await,
            vec![0x6A, 0x80]
        );
        assert_eq!(
            card.stats(),
            ChipStats {
                inserted: true,
                sessions: 1,
                apdus: 2,
                last_sw: Some(0x6A80)
            }
        );
        card.set_fault(ChipFault::Mute);
        assert_eq!(
            vpcd.ask(&[answer::CTRL_GET_ATR]).await.len(),
            answer::MUTE_ATR.len()
        );
        // A mute card hangs up on an APDU, then comes back (still inserted).
        vpcd.send(&[0x00, 0xB0, 0x00, 0x00, 0x00]).await;
        assert_closed(&mut vpcd).await;
        assert_eq!(card.stats().apdus, 3);
        assert_eq!(card.stats().last_sw, Some(0x6A80));
        let mut again = accept(&listener).await;
        assert_eq!(
            again.ask(&[answer::CTRL_GET_ATR]).await.len(),
            answer::MUTE_ATR.len()
        );
        assert_eq!(card.stats().sessions, 2);
        assert!(card.stats().inserted);
        card.remove();
        assert!(!card.stats().inserted);
        assert_closed(&mut again).await;
    }

    async fn assert_closed(vpcd: &mut FakeVpcd) {
        let mut rest = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(5), vpcd.stream.read_to_end(&mut rest))
            .await
            .expect("the card closes the connection");
        assert!(n.is_err() || rest.is_empty(), "nothing after the close");
    }

    #[tokio::test]
    async fn insert_and_remove_cycle_cleanly() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let card = VpcdCard::new(listener.local_addr().unwrap());
        let mut removed_at: Option<Instant> = None;
        for i in 1..=3u64 {
            card.insert();
            card.insert(); // already in: nothing happens
            let mut vpcd = accept(&listener).await;
            if let Some(t) = removed_at {
                // Back no sooner than MIN_AWAY after leaving (a lower bound only).
                assert!(t.elapsed() >= MIN_AWAY, "{:?}", t.elapsed());
            }
            assert_eq!(
                vpcd.ask(&[answer::CTRL_GET_ATR]).await,
                answer::ATR.to_vec()
            );
            assert_eq!(
                vpcd.ask(&[0x00, 0xA4, 0x04, 0x00, 0x00]).await,
                vec![0x90, 0x00]
            );
            assert_eq!(
                card.stats(),
                ChipStats {
                    inserted: true,
                    sessions: i,
                    apdus: i,
                    last_sw: Some(0x9000)
                }
            );
            card.remove();
            removed_at = Some(Instant::now());
            card.remove(); // already out: nothing happens
            assert!(!card.stats().inserted);
        }
    }

    #[tokio::test]
    async fn a_card_back_at_once_waits_min_away_then_connects() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let card = VpcdCard::new(listener.local_addr().unwrap());
        card.insert();
        let first = accept(&listener).await;
        card.remove();
        let removed = Instant::now();
        card.insert();
        // Lower bounds only: insert waited, then connected before returning.
        assert!(removed.elapsed() >= MIN_AWAY);
        assert!(card.stats().inserted);
        let mut second = accept(&listener).await;
        assert_eq!(
            second.ask(&[answer::CTRL_GET_ATR]).await,
            answer::ATR.to_vec()
        );
        assert_eq!(card.stats().sessions, 2);
        drop(first);
        // Removed by another thread while insert waits: it never connects.
        card.remove();
        let other = card.clone();
        let remover = std::thread::spawn(move || {
            std::thread::sleep(MIN_AWAY / 4);
            other.remove();
        });
        card.insert();
        remover.join().unwrap();
        assert!(!card.stats().inserted);
        let late = tokio::time::timeout(MIN_AWAY, listener.accept()).await;
        assert!(late.is_err(), "a removed card must not connect");
        assert_eq!(card.stats().sessions, 2);
    }

    #[tokio::test]
    async fn another_card_on_the_same_slot_waits_too() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let first = VpcdCard::new(addr);
        first.insert();
        let _held = accept(&listener).await;
        drop(first);
        let left = Instant::now();
        let second = VpcdCard::new(addr);
        second.insert();
        assert!(left.elapsed() >= MIN_AWAY, "{:?}", left.elapsed());
        assert!(second.stats().inserted);
        // Another slot is not concerned.
        let other = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let third = VpcdCard::new(other.local_addr().unwrap());
        let t = Instant::now();
        third.insert();
        assert!(third.stats().inserted);
        assert!(t.elapsed() < MIN_AWAY, "{:?}", t.elapsed());
    }

    #[tokio::test]
    async fn a_new_card_takes_a_lingering_one_out_of_the_slot() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let old = VpcdCard::new(addr);
        old.insert();
        let mut old_link = accept(&listener).await;
        let new = VpcdCard::new(addr);
        new.insert();
        assert!(!old.stats().inserted, "one slot, one card");
        assert_closed(&mut old_link).await;
        assert!(new.stats().inserted);
        let mut new_link = accept(&listener).await;
        assert_eq!(
            new_link.ask(&[answer::CTRL_GET_ATR]).await,
            answer::ATR.to_vec()
        );
    }

    #[tokio::test]
    async fn reconnects_when_vpcd_drops_a_card_still_inserted() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let card = VpcdCard::new(listener.local_addr().unwrap());
        card.insert();
        let vpcd = accept(&listener).await;
        drop(vpcd);
        let mut again = accept(&listener).await;
        assert_eq!(
            again.ask(&[answer::CTRL_GET_ATR]).await,
            answer::ATR.to_vec()
        );
        let stats = card.stats();
        assert!(stats.inserted);
        assert_eq!(stats.sessions, 2);
    }

    #[tokio::test]
    async fn an_unreachable_vpcd_leaves_the_card_out() {
        // A port nobody listens on.
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let card = VpcdCard::new(addr);
        card.insert();
        assert_eq!(card.stats(), ChipStats::default());
        card.remove();
        assert_eq!(card.stats(), ChipStats::default());
    }

    #[test]
    fn insert_outside_a_runtime_does_not_panic() {
        let card = VpcdCard::new("127.0.0.1:9".parse().unwrap());
        card.insert();
        assert!(!card.stats().inserted);
        card.remove();
    }

    #[tokio::test]
    async fn dropping_the_last_clone_removes_the_card() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let card = VpcdCard::new(listener.local_addr().unwrap());
        let other = card.clone();
        card.insert();
        let mut vpcd = accept(&listener).await;
        drop(card);
        assert!(other.stats().inserted);
        assert_eq!(
            vpcd.ask(&[answer::CTRL_GET_ATR]).await,
            answer::ATR.to_vec()
        );
        drop(other);
        assert_closed(&mut vpcd).await;
    }
}
