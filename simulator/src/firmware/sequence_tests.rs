//! Print jobs as the vendor's drivers send them, the guide's commands a field
//! tool asks, and numbers read strictly.

use super::tests::{check_invariants, cmd, km, ok, send, t};
use super::words::*;
use super::*;
use bytes::Bytes;
use dialect::panel::{self, Geometry, Levels};

/// A K panel with `n` inked pixels on line 0, compressed, as `Dbc`.
fn dbc_k(n: usize) -> Command {
    let mut bm = Bitmap::blank(Geometry::default(), Levels::Two);
    for x in 0..n {
        bm.set(x, 0, 1);
    }
    let data = panel::compress(&bm);
    Command::new("Dbc")
        .param("k")
        .param(2)
        .param(data.len())
        .with_payload(Bytes::from(data))
}

/// The same panel uncompressed, as `Db`.
fn db_k(n: usize) -> Command {
    let mut bm = Bitmap::blank(Geometry::default(), Levels::Two);
    for x in 0..n {
        bm.set(x, 0, 1);
    }
    Command::new("Db")
        .param("k")
        .param(2)
        .with_payload(Bytes::from(panel::pack(&bm)))
}

fn frame(p: &mut Printer, c: Command) -> String {
    match p.handle(&Inbound::Command(c), 0).reply.expect("a reply") {
        Reply::Text(s) => s,
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_vendor_drivers_monochrome_job_prints_a_card_without_si() {
    let mut p = km();
    let cards = p.feeders.iter().map(|f| f.count).sum();
    for f in [
        "Pr;k",
        "Pmi;F;s",
        "Pc;k;=;10",
        "Pdt;DU",
        "Mr;s",
        "Ppws;N",
        "Ss",
        "Sr",
    ] {
        ok(&mut p, f);
        assert!(
            p.cards.is_empty(),
            "{f}: no card is taken before a panel needs one"
        );
    }
    assert_eq!(frame(&mut p, dbc_k(30)), "OK");
    assert_eq!(p.cards.len(), 1, "the download took a card from the feeder");
    let rec = &p.cards[0].record;
    assert_eq!(rec.place, Place::Inside);
    assert_eq!(
        rec.panels.len(),
        1,
        "the panel printed as it was downloaded"
    );
    assert_eq!(
        (rec.panels[0].side.as_str(), rec.panels[0].inked),
        ("front", 30)
    );
    ok(&mut p, "Se;1");
    assert_eq!(p.cards[0].record.place, Place::Bezel);
    assert_eq!(p.cards[0].images.len(), 1);
    assert_eq!(p.cards[0].images[0].side, "front");
    assert_eq!(p.ribbon.ribbon_type, "k");
    check_invariants(&p, cards);
    // The sequence is over: a download only loads again.
    assert_eq!(frame(&mut p, dbc_k(5)), "OK");
    assert_eq!(p.cards.len(), 1);
}

#[test]
fn the_public_drivers_duplex_job_prints_front_and_back() {
    let mut p = km();
    for f in ["Pr;k", "Pmi;F;s", "Pc;k;=;10", "Ss", "Sr"] {
        ok(&mut p, f);
    }
    assert_eq!(frame(&mut p, db_k(10)), "OK");
    ok(&mut p, "Sv");
    ok(&mut p, "Pc;k;=;10");
    assert_eq!(frame(&mut p, db_k(20)), "OK");
    assert_eq!(p.cards.len(), 1, "both sides on one card");
    ok(&mut p, "Se");
    let rec = &p.cards[0].record;
    let sides: Vec<(&str, u64)> = rec
        .panels
        .iter()
        .map(|x| (x.side.as_str(), x.inked))
        .collect();
    assert_eq!(sides, [("front", 10), ("back", 20)]);
    assert_eq!(rec.place, Place::Bezel);
    assert_eq!(p.counters.printed_panels, 2);
}

#[test]
fn a_sequence_uses_a_card_already_inserted_and_stops_on_faults() {
    // The agent's way (Si first) inside a sequence: no second card.
    let mut p = km();
    ok(&mut p, "Si");
    ok(&mut p, "Ss");
    assert_eq!(frame(&mut p, dbc_k(3)), "OK");
    assert_eq!(p.cards.len(), 1);
    ok(&mut p, "Se");
    // An empty feeder: the download answers the feeder's word, nothing printed.
    let mut p = km();
    p.raise(Condition::FeederEmpty, 0);
    ok(&mut p, "Ss");
    assert_eq!(frame(&mut p, dbc_k(3)), FEEDER_EMPTY);
    assert!(p.cards.is_empty());
    // No ribbon: refused before a card leaves the feeder.
    let mut p = km();
    p.raise(Condition::RibbonMissing, 0);
    ok(&mut p, "Ss");
    assert_eq!(frame(&mut p, dbc_k(3)), ERROR_RIBBON);
    assert!(p.cards.is_empty());
    // A sequence with nothing printed has no card to eject.
    let mut p = km();
    ok(&mut p, "Ss");
    assert_eq!(t(&mut p, "Se"), ERROR_TIME_OUT);
    assert_eq!(t(&mut p, "Se;2"), ERROR_PARAMETRES);
}

#[test]
fn field_tool_commands_answer() {
    let mut p = km();
    assert_eq!(t(&mut p, "Rkn"), "KIT-SIM-0001");
    assert_eq!(t(&mut p, "Rck"), "5A3C");
    assert_eq!(t(&mut p, "Sk;s"), "OK");
    assert_eq!(t(&mut p, "Sk;s;1"), ERROR_PARAMETRES);
    ok(&mut p, "Sie");
    assert_eq!(p.cards[0].record.place, Place::Bezel, "a card in and out");
    assert!(p.cards[0].record.panels.is_empty());
    // Ssd prints what is in memory: here the text written with Wt.
    let mut p = km();
    ok(&mut p, "Si");
    ok(&mut p, "Wt;100;100;1;40;HELLO");
    ok(&mut p, "Ssd;k");
    let rec = &p.cards[0].record;
    assert_eq!(rec.panels.len(), 1);
    assert!(rec.panels[0].inked > 0);
    assert_eq!(rec.text_lines[0].height, 40);
    // In ACK/NACK mode the reads still answer text.
    ok(&mut p, "Pem;2");
    assert_eq!(send(&mut p, "Pem;4"), Reply::Text("OK".into()));
    assert_eq!(t(&mut p, "Rkn"), "KIT-SIM-0001");
    assert_eq!(send(&mut p, "Sr"), Reply::Ack);
}

#[test]
fn numbers_are_read_strictly() {
    let mut p = km();
    for frame in [
        "Wt;040;100;0;40;A",
        "Wt;40;100;0;040;A",
        "Wt;40;100;2;40;A",
        "Wt;40;100;0;0;A",
        "Wt;40;648;0;40;A",
        "Wt;1016;100;0;40;A",
        "Wt;+40;100;0;40;A",
        "Sdm;010",
        "Sdm;600001",
        "Piem;01",
        "Piem;3",
        "Pc;k;=;010",
        "Pc;k;~;10",
        "Pc;q;=;10",
        "Pc;k;=",
        "Pmi;F;x",
        "Pdt;D U",
        "Pem;02",
    ] {
        assert_eq!(t(&mut p, frame), ERROR_PARAMETRES, "{frame}");
    }
    for frame in ["Wt;0;0;0;20;A", "Wt;1015;647;1;236;A", "Sdm;0", "Piem;2;0"] {
        ok(&mut p, frame);
    }
    // A byte count with a leading zero is no byte count.
    let mut c = dbc_k(1);
    c.params[2] = format!("0{}", c.params[2]);
    assert_eq!(frame(&mut p, c), ERROR_PARAMETRES);
    let mut c = db_k(1);
    c.params[1] = "02".into();
    assert_eq!(frame(&mut p, c), ERROR_PARAMETRES);
    let _ = cmd("Rtp");
}
