//! The links: in-process, pty, TCP, the USB terminator, and an outage.

mod common;

use common::*;
use dialect::{Reply, Terminator};
use printer_sim::{Condition, Customer, Place, Simulator};
use std::io::Read;
use std::net::TcpStream;
use std::time::Duration;

#[tokio::test]
async fn in_process_link_runs_a_whole_card() {
    let sim = Simulator::new(fast_config("evolis-km500b"));
    let mut c = Client::new(sim.connect());
    assert_eq!(c.text("Rtp").await, "KM500B");
    for (frame, reply) in run_card(&mut c).await {
        let want = if frame.starts_with("Smr") {
            format!("{PAN}=2812101")
        } else {
            "OK".to_string()
        };
        assert_eq!(reply, want, "{frame}");
    }
    // The default customer takes the card at once.
    let s = wait_state(&sim, "the card taken", |s| s.counters.taken == 1).await;
    assert_eq!(s.cards[0].place, Place::Taken);
    assert_eq!(s.counters.presented, 1);
    let json = serde_json::to_string(&s).unwrap();
    assert!(!json.contains(PAN));
    // Garbage in the middle of the stream does not stop the link.
    tokio::io::AsyncWriteExt::write_all(&mut c.stream, b"\x1b\xff\xfe\r")
        .await
        .unwrap();
    assert_eq!(c.reply().await, Some(Reply::Text("ERROR CDE".into())));
    assert_eq!(c.text("Rsn").await, "SIM000001");
}

#[tokio::test]
async fn customer_never_and_refuse() {
    let mut cfg = fast_config("evolis-km500b");
    cfg.customer = Customer::Never;
    let sim = Simulator::new(cfg);
    let mut c = Client::new(sim.connect());
    run_card(&mut c).await;
    let st = c.text("Rst").await;
    let words = dialect::status::parse_status_words(&st).unwrap();
    assert!(words.bit("INF", 4), "the card waits in the bezel: {st}");
    sim.set_customer(Customer::Refuse);
    let s = sim.state();
    assert_eq!(s.customer_verdict.as_deref(), Some("refused"));
    assert_eq!(c.text("Ser").await, "OK");
    let s = sim.state();
    assert_eq!(s.counters.rejected, 1);
    assert_eq!(s.cards[0].place, Place::RejectBox);
    // take: whether there was a card.
    assert!(!sim.take());
    sim.set_customer(Customer::TakeAfter(50));
    run_card(&mut c).await;
    wait_state(&sim, "the customer taking card 2", |s| {
        s.counters.taken == 1
    })
    .await;
}

#[tokio::test]
async fn pty_link_with_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("printer");
    // An old symlink is replaced.
    std::os::unix::fs::symlink("/nonexistent", &link).unwrap();
    let sim = Simulator::new(fast_config("evolis-km500b"));
    let path = sim.serve_pty(Some(&link)).await.unwrap();
    assert_eq!(path, link);
    assert!(std::fs::read_link(&link).unwrap().starts_with("/dev/pts"));
    let link2 = link.clone();
    tokio::task::spawn_blocking(move || {
        let open = || {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&link2)
                .unwrap()
        };
        let mut c = SyncClient::new(open());
        let (r, raw) = c.ask_raw("Rtp");
        assert_eq!(r, Reply::Text("KM500B".into()));
        assert_eq!(raw, b"KM500B\r", "raw mode: CR goes through untranslated");
        assert_eq!(c.text("Si"), "OK");
        drop(c);
        // The agent closes and reopens the port: the simulator carries on.
        std::thread::sleep(Duration::from_millis(200));
        let mut c = SyncClient::new(open());
        assert_eq!(c.text("Rlr;p"), "CARD");
        assert_eq!(c.text("Ser"), "OK");
    })
    .await
    .unwrap();
    assert_eq!(sim.state().counters.rejected, 1);
    assert!(sim.state().links.pty.unwrap().starts_with("/dev/pts/"));
    // Anything but a symlink at the link path is left alone.
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    assert!(sim.serve_pty(Some(&file)).await.is_err());
}

#[tokio::test]
async fn tcp_link_serves_one_connection_at_a_time() {
    let sim = Simulator::new(fast_config("evolis-km500b"));
    let addr = sim.serve_tcp("127.0.0.1:0".parse().unwrap()).await.unwrap();
    assert_ne!(addr.port(), 0);
    assert_eq!(sim.state().links.tcp, Some(addr.to_string()));
    tokio::task::spawn_blocking(move || {
        let mut first = SyncClient::new(TcpStream::connect(addr).unwrap());
        assert_eq!(first.text("Rsn"), "SIM000001");
        // A second connection waits until the first is done.
        let second = TcpStream::connect(addr).unwrap();
        second
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut second = SyncClient::new(second);
        std::io::Write::write_all(&mut second.stream, &common::cmd("Rtp").to_bytes().unwrap())
            .unwrap();
        let mut b = [0u8; 16];
        assert!(
            second.stream.read(&mut b).is_err(),
            "served while the first is connected"
        );
        assert_eq!(first.text("Rtp"), "KM500B");
        drop(first);
        second.stream.set_read_timeout(Some(PATIENCE)).unwrap();
        let n = second.stream.read(&mut b).unwrap();
        assert_eq!(&b[..n], b"KM500B\r");
        // A frame split across writes, then two frames in one write.
        second.write_raw(b"\x1bRs");
        std::thread::sleep(Duration::from_millis(50));
        second.write_raw(b"n\r");
        assert_eq!(second.read_reply().0, Reply::Text("SIM000001".into()));
        second.write_raw(b"\x1bRtp\r\x1bRsn\r");
        assert_eq!(second.read_reply().0, Reply::Text("KM500B".into()));
        assert_eq!(second.read_reply().0, Reply::Text("SIM000001".into()));
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn usb_node_replies_end_with_nul() {
    let mut cfg = fast_config("evolis-km500b");
    cfg.reply_terminator = Terminator::Nul;
    let sim = Simulator::new(cfg);
    let mut c = Client::with_terminator(sim.connect(), Terminator::Nul);
    assert_eq!(c.text("Rtp").await, "KM500B");
    sim.raise(Condition::Garbage(Some(1)));
    assert!(matches!(c.ask("Rsn").await, Reply::Malformed { .. }));
}

#[tokio::test]
async fn ack_nack_over_a_link() {
    let sim = Simulator::new(fast_config("evolis-km500b"));
    let mut c = Client::new(sim.connect());
    assert_eq!(c.ask("Pem;4").await, Reply::Text("OK".into()));
    assert_eq!(c.ask("Si").await, Reply::Ack);
    sim.raise(Condition::CoverOpen);
    assert_eq!(c.ask("Sp;k").await, Reply::Nack(b'C'));
    assert_eq!(c.text("Rtp").await, "KM500B");
}

#[tokio::test]
async fn unreachable_drops_the_links_and_brings_them_back() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("printer");
    let sim = Simulator::new(fast_config("evolis-km500b"));
    sim.serve_pty(Some(&link)).await.unwrap();
    let addr = sim.serve_tcp("127.0.0.1:0".parse().unwrap()).await.unwrap();
    // The agent has the port open when the link drops.
    let mut held = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&link)
        .unwrap();

    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut t = Client::new(tcp);
    assert_eq!(t.text("Rsn").await, "SIM000001");
    let mut mem = Client::new(sim.connect());
    assert_eq!(mem.text("Rsn").await, "SIM000001");

    sim.raise(Condition::Unreachable(Some(60_000)));
    // Every open connection is closed.
    t.send(&common::cmd("Rsn")).await;
    assert_eq!(t.reply().await, None);
    mem.send(&common::cmd("Rsn")).await;
    assert_eq!(mem.reply().await, None);
    assert!(!sim.state().links.reachable);
    // The pty is gone under the agent: its read ends (EOF or EIO) instead of waiting.
    let hung_up = tokio::task::spawn_blocking(move || {
        let mut b = [0u8; 8];
        matches!(held.read(&mut b), Ok(0) | Err(_))
    });
    assert!(tokio::time::timeout(PATIENCE, hung_up)
        .await
        .unwrap()
        .unwrap());
    // New connections are refused (the listener is closed)...
    let refused = wait_until(|| TcpStream::connect(addr).is_err()).await;
    assert!(refused, "the listener stayed open during the outage");
    // ...and an in-process one closes at once.
    let mut closed = Client::new(sim.connect());
    closed.send(&common::cmd("Rsn")).await;
    assert_eq!(closed.reply().await, None);

    sim.clear(Some("unreachable"));
    // Same port, same symlink (re-pointed at a new pty).
    let back = wait_until(|| TcpStream::connect(addr).is_ok()).await;
    assert!(back, "TCP did not come back on port {}", addr.port());
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    assert_eq!(Client::new(tcp).text("Rsn").await, "SIM000001");
    // The symlink points at the new pty (the kernel may reuse the number).
    assert!(
        wait_until(|| std::fs::read_link(&link).is_ok_and(|p| std::path::Path::new(&p).exists()))
            .await
    );
    let link2 = link.clone();
    tokio::task::spawn_blocking(move || {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&link2)
            .unwrap();
        assert_eq!(SyncClient::new(f).text("Rtp"), "KM500B");
    })
    .await
    .unwrap();

    // With a delay, the links come back by themselves.
    sim.raise("unreachable:200".parse().unwrap());
    wait_state(&sim, "the outage", |s| {
        !s.links.reachable || s.conditions.is_empty()
    })
    .await;
    wait_state(&sim, "the end of the outage", |s| {
        s.links.reachable && s.conditions.is_empty()
    })
    .await;
    let back = wait_until(|| TcpStream::connect(addr).is_ok()).await;
    assert!(back);
}

/// Polls a blocking check until it holds (true) or the patience runs out (false).
async fn wait_until(f: impl Fn() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn slow_replies_still_arrive() {
    let sim = Simulator::new(fast_config("evolis-km500b"));
    let mut c = Client::new(sim.connect());
    sim.raise("slow:100".parse().unwrap());
    assert_eq!(c.text("Rsn").await, "SIM000001");
    sim.clear(None);
    assert!(sim.state().conditions.is_empty());
}

#[tokio::test]
async fn realistic_speed_does_not_block_other_links() {
    let mut cfg = fast_config("evolis-km500b");
    cfg.speed = 1.0;
    let sim = Simulator::new(cfg);
    let mut a = Client::new(sim.connect());
    let mut b = Client::new(sim.connect());
    // A cleaning cycle takes 20 s at speed 1; the other link reads meanwhile.
    a.send(&common::cmd("Scp")).await;
    let st = wait_state(&sim, "busy", |s| {
        s.status
            .get("INF")
            .is_some_and(|v| u32::from_str_radix(v, 16).unwrap() & (1 << 6) != 0)
    })
    .await;
    assert_eq!(st.counters.cleanings, 1);
    assert_eq!(b.text("Rtp").await, "KM500B");
    drop(a);
}
