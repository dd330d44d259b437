//! The smart station drives the virtual chip: `Sis` inserts it into the
//! reader (here a stand-in for pcscd's vpcd that only accepts), moving the
//! card on removes it, and the card's record keeps what the chip saw.

mod common;

use common::*;
use printer_sim::{Condition, Simulator};

/// Accepts vpcd connections and holds them open, as an idle reader would.
async fn fake_vpcd() -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    addr
}

#[tokio::test]
async fn sis_inserts_the_chip_and_leaving_removes_it() {
    let mut cfg = fast_config("evolis-km500b");
    cfg.vpcd = Some(fake_vpcd().await);
    let sim = Simulator::new(cfg);
    let mut c = Client::new(sim.connect());
    assert_eq!(c.text("Si").await, "OK");
    assert!(!sim.state().chip.unwrap().inserted);
    assert_eq!(c.text("Sis").await, "OK");
    // Inserted before the OK went out: the agent may talk PC/SC at once.
    assert!(sim.state().chip.unwrap().inserted);
    assert_eq!(c.text("Rlr;p").await, "SMART CARD");
    sim.raise(Condition::ChipMute);
    assert_eq!(c.text("Smw").await, "OK");
    let s = sim.state();
    assert!(!s.chip.unwrap().inserted, "the card left the contacts");
    let chip = s.cards[0].chip.clone().expect("the card's chip stats");
    assert_eq!(chip.sessions, 1);
    sim.clear(None);

    // The contacts miss the chip: OK, but the reader sees nothing.
    assert_eq!(c.text("Ser").await, "OK");
    assert_eq!(c.text("Si").await, "OK");
    sim.raise(Condition::CardNotInReader);
    assert_eq!(c.text("Sis").await, "OK");
    assert!(!sim.state().chip.unwrap().inserted);
}
