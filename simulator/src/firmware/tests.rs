//! The firmware without I/O: frames in, replies and status bits out.

use super::status::StatusWords;
use super::*;
use crate::config::FeederConfig;
use crate::scenario::Scenario;
use bytes::Bytes;
use dialect::panel::{self, Geometry, Levels};

const PAN: &str = "4000001234567899";

pub(super) fn config(model: &str) -> SimConfig {
    let mut c = SimConfig::for_model(model).unwrap();
    c.speed = 0.0;
    c
}

pub(super) fn km() -> Printer {
    Printer::new(&config("evolis-km500b"))
}

fn ie4() -> Printer {
    Printer::new(&config("instant-embosser-ie4"))
}

pub(super) fn cmd(frame: &str) -> Command {
    let mut parts = frame.split(';');
    let mut c = Command::new(parts.next().unwrap());
    for p in parts {
        c = c.param(p);
    }
    c
}

pub(super) fn outcome(p: &mut Printer, frame: &str) -> Outcome {
    p.handle(&Inbound::Command(cmd(frame)), 0)
}

pub(super) fn send(p: &mut Printer, frame: &str) -> Reply {
    outcome(p, frame).reply.expect("a reply")
}

/// The text reply to a frame.
pub(super) fn t(p: &mut Printer, frame: &str) -> String {
    match send(p, frame) {
        Reply::Text(s) => s,
        other => panic!("{frame}: {other:?}"),
    }
}

pub(super) fn ok(p: &mut Printer, frame: &str) {
    assert_eq!(t(p, frame), "OK", "{frame}");
}

fn st(p: &Printer) -> StatusWords {
    p.status_words(0)
}

fn has(word: u32, bit: u32) -> bool {
    word & (1 << bit) != 0
}

/// Inserts a card from the feeders.
pub(super) fn insert(p: &mut Printer) {
    ok(p, "Pmi;F");
    ok(p, "Si");
}

/// Checks the physical rules after every step: one card on the path at
/// most, one in the bezel at most, and no card lost or made up.
pub(super) fn check_invariants(p: &Printer, initial_cards: u32) {
    let path = p.cards.iter().filter(|c| c.record.place.in_path()).count();
    let bezel = p
        .cards
        .iter()
        .filter(|c| c.record.place == Place::Bezel)
        .count();
    assert!(path <= 1, "{path} cards on the path");
    assert!(bezel <= 1, "{bezel} cards in the bezel");
    let left: u32 = p.feeders.iter().map(|f| f.count).sum();
    assert_eq!(
        left as usize + p.cards.len(),
        initial_cards as usize,
        "cards appeared or vanished"
    );
    let in_hopper = p
        .cards
        .iter()
        .filter(|c| c.record.place == Place::Hopper)
        .count() as u32;
    let in_reject = p
        .cards
        .iter()
        .filter(|c| c.record.place == Place::RejectBox)
        .count() as u32;
    assert!(p.hopper.count <= in_hopper && p.reject.count <= in_reject);
    assert_eq!(p.counters.rejected as u32, in_reject);
    for (i, c) in p.cards.iter().enumerate() {
        assert_eq!(c.record.seq, i as u64 + 1);
    }
}

#[test]
fn identity_comes_from_the_profile_and_config() {
    let mut p = km();
    assert_eq!(t(&mut p, "Rtp"), "KM500B");
    assert_eq!(t(&mut p, "Rsn"), "SIM000001");
    assert!(t(&mut p, "Rfv").starts_with("SIM-"));
    p.set_serial("SN42");
    assert_eq!(t(&mut p, "Rsn"), "SN42");
    assert_eq!(t(&mut ie4(), "Rtp"), "IE4-EMB");
}

#[test]
fn unknown_commands_and_bad_parameters() {
    let mut p = km();
    for (frame, word) in [
        ("Zz", ERROR_CDE),
        ("Sxyz", ERROR_CDE),
        ("Rse;z", ERROR_PARAMETRES),
        ("Rse", ERROR_PARAMETRES),
        ("Si;1", ERROR_PARAMETRES),
        ("Pem;x", ERROR_PARAMETRES),
        ("Piem;9;0", ERROR_PARAMETRES),
        ("Pr;rainbow", ERROR_PARAMETRES),
        ("Wt;1;2;0;12", ERROR_PARAMETRES),
        ("Wt;x;2;0;12;A", ERROR_PARAMETRES),
        ("Rco;q", ERROR_PARAMETRES),
        ("Dm;4;123", ERROR_PARAMETRES),
        ("Dm;2;12A", ERROR_PARAMETRES),
        ("Sp;q", ERROR_PARAMETRES),
        ("Sk;x", ERROR_PARAMETRES),
        ("Sdm;forever", ERROR_PARAMETRES),
    ] {
        assert_eq!(t(&mut p, frame), word, "{frame}");
    }
    // Frames the decoder could not read.
    let bad = |raw: &[u8]| Inbound::Malformed {
        raw: raw.to_vec(),
        why: "test".into(),
    };
    assert_eq!(
        p.handle(&bad(b"\x1b\xff\xfe"), 0).reply,
        Some(Reply::Text(ERROR_CDE.into()))
    );
    assert_eq!(
        p.handle(&bad(b"\x1bDbc;k;2;99999999999;"), 0).reply,
        Some(Reply::Text(ERROR_PARAMETRES.into()))
    );
}

#[test]
fn a_whole_card_from_feeder_to_customer() {
    let mut p = km();
    ok(&mut p, "Pem;2");
    ok(&mut p, "Pmi;F");
    ok(&mut p, "Piem;2;0");
    let o = outcome(&mut p, "Si");
    assert_eq!(o.reply, Some(Reply::Text("OK".into())));
    assert_eq!(p.feeders[1].count, DEFAULT_FEEDER_COUNT - 1);
    assert_eq!(t(&mut p, "Rlr;p"), "CARD");
    assert!(has(st(&p).inf, 1));

    let o = outcome(&mut p, "Sis");
    assert_eq!(o.effects, vec![Effect::ChipInsert { card: 1 }]);
    assert_eq!(t(&mut p, "Rlr;p"), "SMART CARD");
    assert!(has(st(&p).inf, 2) && !has(st(&p).inf, 1));

    ok(&mut p, &format!("Dm;1;B{PAN}^DOE/JOHN^2812"));
    ok(&mut p, &format!("Dm;2;{PAN}=2812101"));
    let o = outcome(&mut p, "Smw");
    assert_eq!(o.reply, Some(Reply::Text("OK".into())));
    assert_eq!(
        o.effects,
        vec![Effect::ChipRemove { card: 1 }],
        "leaving the station removes the chip"
    );
    assert_eq!(t(&mut p, "Smr;2"), format!("{PAN}=2812101"));
    assert_eq!(t(&mut p, "Smr;1"), format!("B{PAN}^DOE/JOHN^2812"));
    assert_eq!(t(&mut p, "Smr;3"), ERROR_MAG_DATA, "a blank track");

    ok(&mut p, "Wcb;k");
    ok(&mut p, &format!("Wt;50;60;0;12;{PAN}"));
    ok(&mut p, "Wt;50;200;0;12;JOHN DOE");
    ok(&mut p, "Sp;k");
    let o = outcome(&mut p, "Se");
    assert_eq!(
        o.effects,
        vec![Effect::Presented {
            card: 1,
            take_after: Some(0)
        }]
    );
    assert_eq!(
        t(&mut p, "Rlr;p"),
        "CARD",
        "the printer still holds a presented card"
    );
    assert!(has(st(&p).inf, 4));
    assert_eq!(p.verdict.as_deref(), Some("accepted"));

    assert!(p.take(5).0);
    assert!(!has(st(&p).inf, 4));
    assert_eq!(t(&mut p, "Rlr;p"), "OK");
    assert!(!p.take(6).0, "nothing left to take");

    let s = p.snapshot(0);
    assert_eq!(
        s.counters,
        Counters {
            inserted: 1,
            presented: 1,
            taken: 1,
            rejected: 0,
            printed_panels: 1,
            cleanings: 0
        }
    );
    let card = &s.cards[0];
    assert_eq!(card.place, Place::Taken);
    assert_eq!(card.feeder, 2);
    assert_eq!(card.tracks[&2], "<24 chars withheld>");
    assert_eq!(card.text_lines.len(), 2);
    assert_eq!(card.text_lines[0].text, "400000******7899");
    assert_eq!(card.panels[0].panel, "k");
    assert!(card.panels[0].inked > 0);
    assert!(!card.events.is_empty());
    assert_eq!(t(&mut p, "Rco;p"), "1");
    assert_eq!(t(&mut p, "Rco;c"), "1");
}

#[test]
fn no_full_card_number_in_the_state() {
    let mut p = ie4();
    insert(&mut p);
    ok(&mut p, &format!("Dm;2;{PAN}=2812101"));
    ok(&mut p, "Smw");
    ok(&mut p, &format!("Wt;1;1;0;10;CARD {PAN}"));
    ok(&mut p, "Sp;k");
    ok(&mut p, &format!("Xel;1;0;{}", "4000 0012 3456 7899"));
    ok(&mut p, &format!("Xel;2;1;{PAN}"));
    ok(&mut p, "Xee");
    let json = serde_json::to_string(&p.snapshot(0)).unwrap();
    assert!(!json.contains(PAN), "{json}");
    assert!(!format!("{:?}", p.cards[0].stripe).contains(PAN));
    // The encoder still reads back what it wrote.
    assert_eq!(t(&mut p, "Smr;2"), format!("{PAN}=2812101"));
}

#[test]
fn each_condition_gives_its_reply_and_status_bits() {
    // (condition, setup frames, frame, reply word, (word, bit) that must be set)
    type Case = (
        &'static str,
        &'static [&'static str],
        &'static str,
        &'static str,
        &'static [(&'static str, u32)],
    );
    let cases: &[Case] = &[
        (
            "feeder-empty",
            &[],
            "Si",
            FEEDER_EMPTY,
            &[("WAR", 0), ("INF", 12), ("INF", 13)],
        ),
        ("feeder-door-open", &[], "Si", FEEDER_EMPTY, &[("WAR", 0)]),
        ("feeder-jam", &[], "Si", CARD_JAM, &[("ERR", 3), ("INF", 0)]),
        ("cover-open", &[], "Si", COVER_OPEN, &[("ERR", 2)]),
        ("cover-open", &[], "Dm;2;123", COVER_OPEN, &[("ERR", 2)]),
        ("cover-open", &[], "Wcb;k", COVER_OPEN, &[("ERR", 2)]),
        (
            "ribbon-missing",
            &["Si"],
            "Sp;k",
            ERROR_RIBBON,
            &[("WAR", 6)],
        ),
        ("ribbon-ended", &["Si"], "Sp;k", ERROR_RIBBON, &[("ERR", 5)]),
        ("ribbon-error", &["Si"], "Sp;k", ERROR_RIBBON, &[("ERR", 1)]),
        ("hopper-full", &["Si"], "Se", HOPPER_FULL, &[("ERR", 6)]),
        (
            "hopper-door-open",
            &["Si"],
            "Se",
            HOPPER_DOOR,
            &[("ERR", 19)],
        ),
        (
            "hopper-jam",
            &["Si"],
            "Se",
            CARD_JAM,
            &[("ERR", 3), ("INF", 5)],
        ),
        (
            "reject-full",
            &["Si"],
            "Ser",
            REJECT_BOX_FULL,
            &[("ERR", 4), ("WAR", 1)],
        ),
        (
            "mag-write-fail",
            &["Si", "Dm;2;123"],
            "Smw",
            ERROR_MAG,
            &[("ERR", 11)],
        ),
        ("paused", &[], "Si", PRINTER_PAUSED, &[("WAR", 11)]),
        ("locked", &[], "Si", PRINTER_LOCKED, &[("WAR", 4)]),
        ("locked", &["Si"], "Sp;k", PRINTER_LOCKED, &[("WAR", 4)]),
    ];
    for (cond, setup, frame, word, bits) in cases {
        let mut p = km();
        for s in *setup {
            ok(&mut p, s);
        }
        let before = st(&p);
        p.raise(cond.parse().unwrap(), 0);
        assert_eq!(t(&mut p, frame), *word, "{cond}: {frame}");
        let after = st(&p);
        for (w, b) in *bits {
            let v = match *w {
                "CFG" => after.cfg,
                "INF" => after.inf,
                "WAR" => after.war,
                _ => after.err,
            };
            assert!(
                has(v, *b),
                "{cond}: {w} bit {b} not set ({})",
                after.render()
            );
        }
        assert_ne!(before, after, "{cond}: no status change");
        // Reads still answer.
        assert_eq!(t(&mut p, "Rtp"), "KM500B", "{cond}");
        assert!(t(&mut p, "Rst").starts_with("CFG="), "{cond}");
    }
}

#[test]
fn emboss_conditions_and_ex1() {
    let mut p = ie4();
    insert(&mut p);
    ok(&mut p, "Xel;1;0;4000 0012 3456 7899");
    assert!(t(&mut p, "Rst").ends_with("EX1=00000000"));
    p.raise(Condition::EmbossFail, 0);
    assert_eq!(t(&mut p, "Xee"), ERROR_EMBOSS);
    assert!(has(st(&p).ex1.unwrap(), 0));
    p.clear(Some("emboss-fail"), 0).unwrap();
    p.raise(Condition::EmbossRibbon, 0);
    assert_eq!(t(&mut p, "Xee"), EMBOSS_RIBBON);
    p.clear(None, 0).unwrap();
    ok(&mut p, "Scs");
    assert_eq!(st(&p).ex1, Some(0));
    ok(&mut p, "Xee");
    assert_eq!(p.cards[0].record.emboss_lines.len(), 1);
    assert_eq!(
        p.cards[0].record.emboss_lines[0].text, "4000 00** **** 7899",
        "a card number embossed in groups is masked in the record"
    );
    // Emboss rules: line range, font, characters, width.
    for bad in [
        "Xel;0;0;A",
        "Xel;5;0;A",
        "Xel;1;2;A",
        "Xel;1;0;lower",
        &format!("Xel;1;0;{}", "1".repeat(20)),
    ] {
        assert_eq!(t(&mut p, bad), ERROR_PARAMETRES, "{bad}");
    }
    ok(&mut p, &format!("Xel;2;1;{}", "A".repeat(27)));
    ok(&mut p, "Xec");
    // Without the module.
    let mut k = km();
    assert_eq!(t(&mut k, "Xee"), OPT_NOT_AVAILABLE);
    assert!(has(st(&k).err, 17));
    assert_eq!(st(&k).ex1, None, "no EX1 word without the extension");
}

#[test]
fn smart_station_conditions() {
    let mut p = km();
    assert_eq!(t(&mut p, "Sis"), NO_CARD_IN_STATION);
    insert(&mut p);
    p.raise(Condition::CardNotInReader, 0);
    let o = outcome(&mut p, "Sis");
    assert_eq!(o.reply, Some(Reply::Text("OK".into())));
    assert!(o.effects.is_empty(), "the chip never reaches the reader");
    assert_eq!(
        p.raise(Condition::ChipMute, 0),
        vec![Effect::ChipFault(ChipFault::Mute)]
    );
    assert_eq!(
        p.clear(Some("chip-mute"), 0).unwrap(),
        vec![Effect::ChipFault(ChipFault::None)]
    );
    assert_eq!(
        t(&mut p, "Sic"),
        OPT_NOT_AVAILABLE,
        "no contactless station on the KM500B"
    );
}

#[test]
fn mag_read_mismatch_changes_one_character() {
    let mut p = km();
    insert(&mut p);
    ok(&mut p, "Dm;2;4000001234567899=2812101");
    ok(&mut p, "Smw");
    p.raise(Condition::MagReadMismatch, 0);
    let r = t(&mut p, "Smr;2");
    assert_ne!(r, "4000001234567899=2812101");
    assert_eq!(r.len(), 24);
}

#[test]
fn precedence_of_job_faults() {
    let mut p = km();
    p.raise(Condition::Paused, 0);
    p.raise(Condition::Locked, 0);
    assert_eq!(t(&mut p, "Si"), PRINTER_LOCKED);
    p.raise(Condition::CoverOpen, 0);
    assert_eq!(t(&mut p, "Si"), COVER_OPEN);
    assert_eq!(t(&mut p, "Zz"), ERROR_CDE, "an unknown command is no job");
    assert_eq!(t(&mut p, "Sk;f"), "0", "feeder sensors still read");
    ok(&mut p, "Pem;2");
    p.raise(Condition::Slow(Some(30)), 0);
    let o = outcome(&mut p, "Rsn");
    assert_eq!(o.slow_ms, 30);
    p.raise(Condition::Garbage(Some(1)), 0);
    assert!(matches!(send(&mut p, "Si"), Reply::Malformed { .. }));
    assert_eq!(
        send(&mut p, "Si"),
        Reply::Text(COVER_OPEN.into()),
        "garbage:1 lasts one reply"
    );
    p.raise(Condition::Unreachable(Some(10)), 0);
    let o = outcome(&mut p, "Rsn");
    assert_eq!(o.reply, None);
    assert_eq!(
        p.clear(None, 0)
            .unwrap()
            .iter()
            .filter(|e| **e == Effect::LinkUp)
            .count(),
        1
    );
    insert(&mut p);
}

#[test]
fn garbage_is_a_real_mix_of_bad_bytes() {
    let mut p = km();
    p.raise(Condition::Garbage(None), 0);
    let mut all = Vec::new();
    for _ in 0..4 {
        let Reply::Malformed { raw, .. } = send(&mut p, "Rsn") else {
            panic!("not garbage")
        };
        assert_eq!(raw.last(), Some(&b'\r'));
        all.extend(raw);
    }
    assert!(all.contains(&0) && all.iter().any(|b| *b >= 0x80));
    assert!(p.has(Condition::Garbage(None)), "unlimited until cleared");
}

#[test]
fn unreachable_raises_a_link_effect() {
    let mut p = km();
    assert_eq!(
        p.raise("unreachable:1500".parse().unwrap(), 0),
        vec![Effect::LinkDown { ms: 1500 }]
    );
    assert_eq!(
        p.raise("unreachable".parse().unwrap(), 0),
        vec![Effect::LinkDown { ms: 2000 }]
    );
    assert_eq!(p.conditions().len(), 1, "one condition of a kind");
}

#[test]
fn ack_nack_mode() {
    let mut p = km();
    // The guide's list: 2 is host mode, 4 adds ACK/NACK on top of it. The
    // reply to Pem follows the mode it arrived in.
    assert_eq!(send(&mut p, "Pem;2"), Reply::Text("OK".into()));
    assert_eq!(send(&mut p, "Pem;4"), Reply::Text("OK".into()));
    assert_eq!(send(&mut p, "Pmi;F"), Reply::Ack);
    assert_eq!(send(&mut p, "Zz"), Reply::Nack(b'1'));
    assert_eq!(send(&mut p, "Si;x"), Reply::Nack(b'2'));
    assert_eq!(
        send(&mut p, "Rtp"),
        Reply::Text("KM500B".into()),
        "reads answer text"
    );
    // The current mode and the saved one.
    assert_eq!(send(&mut p, "Rem"), Reply::Text("2;0".into()));
    assert_eq!(
        send(&mut p, "Rlr;p"),
        Reply::Text("OK".into()),
        "even an OK read stays text"
    );
    p.raise(Condition::CoverOpen, 0);
    assert_eq!(send(&mut p, "Si"), Reply::Nack(b'C'));
    p.clear(None, 0).unwrap();
    p.raise(Condition::FeederEmpty, 0);
    assert_eq!(send(&mut p, "Si"), Reply::Nack(b'F'));
    p.clear(None, 0).unwrap();
    assert_eq!(send(&mut p, "Si"), Reply::Ack);
    p.raise(Condition::RibbonEnded, 0);
    assert_eq!(send(&mut p, "Sp;k"), Reply::Nack(b'R'));
    p.raise(Condition::MagWriteFail, 0);
    assert_eq!(send(&mut p, "Smw"), Reply::Nack(b'W'));
    p.raise(Condition::FeederJam, 0);
    assert_eq!(
        send(&mut p, "Si"),
        Reply::Nack(b'1'),
        "a second card while one is inside"
    );
    // Words without a NACK character keep their text.
    p.raise(Condition::HopperDoorOpen, 0);
    assert_eq!(send(&mut p, "Se"), Reply::Text(HOPPER_DOOR.into()));
    assert_eq!(send(&mut p, "Pem;2"), Reply::Ack);
    assert_eq!(send(&mut p, "Pmi;F"), Reply::Text("OK".into()));
    let mut e = ie4();
    ok(&mut e, "Pem;2");
    ok(&mut e, "Pem;4");
    assert_eq!(send(&mut e, "Si"), Reply::Ack);
    e.raise(Condition::EmbossFail, 0);
    assert_eq!(send(&mut e, "Xee"), Reply::Nack(b'E'));
}

#[test]
fn feeder_jam_holds_the_card_until_cleared() {
    let mut p = km();
    p.raise(Condition::FeederJam, 0);
    assert_eq!(t(&mut p, "Si"), CARD_JAM);
    assert_eq!(t(&mut p, "Si"), CARD_JAM, "no second card behind a jam");
    assert_eq!(p.cards.len(), 1);
    assert_eq!(t(&mut p, "Ser"), CARD_JAM, "a jam cannot be rejected");
    assert_eq!(p.counters.inserted, 0);
    p.clear(Some("feeder-jam"), 0).unwrap();
    assert_eq!(p.cards[0].record.place, Place::Removed);
    assert!(!has(st(&p).err, 3));
    ok(&mut p, "Si");
    assert_eq!(p.counters.inserted, 1);
}

#[test]
fn a_card_jammed_at_the_output_can_be_rejected() {
    let mut p = km();
    insert(&mut p);
    p.raise(Condition::HopperJam, 0);
    assert_eq!(t(&mut p, "Se"), CARD_JAM);
    assert_eq!(t(&mut p, "Si"), CARD_JAM, "the jammed card blocks the path");
    ok(&mut p, "Ser");
    assert_eq!(p.cards[0].record.place, Place::RejectBox);
    assert!(!has(st(&p).err, 3) && !has(st(&p).inf, 5));
    assert_eq!(p.counters.rejected, 1);
}

#[test]
fn feeders_and_their_codes() {
    let mut c = config("evolis-km500b");
    c.feeders = vec![FeederConfig::new("visa", 0), FeederConfig::new("mc", 11)];
    let mut p = Printer::new(&c);
    assert_eq!(t(&mut p, "Sk;f"), "1");
    assert_eq!(t(&mut p, "Sk;w"), "1");
    assert!(has(st(&p).inf, 12) && !has(st(&p).inf, 13));
    assert!(!has(st(&p).war, 0), "feeder 2 still has cards");
    ok(&mut p, "Piem;1;0");
    assert_eq!(t(&mut p, "Si"), FEEDER_EMPTY, "the chosen feeder is empty");
    assert!(has(st(&p).war, 0));
    ok(&mut p, "Piem;0;0");
    ok(&mut p, "Si");
    assert_eq!(p.cards[0].record.card_type, "mc");
    assert_eq!(
        t(&mut p, "Sk;w"),
        "3",
        "feeder 2 down to 10: both near empty"
    );
    p.set_feeder(2, 0, None).unwrap();
    assert_eq!(t(&mut p, "Sk;f"), "3");
    assert!(p.set_feeder(3, 1, None).is_err());
    assert_eq!(t(&mut p, "Rse;f"), "0.00");
    p.set_feeder(1, 50, Some("amex")).unwrap();
    assert_eq!(t(&mut p, "Rse;f"), "5.00");

    let mut c = config("instant-embosser-ie4");
    c.feeders = vec![
        FeederConfig::new("a", 1),
        FeederConfig::new("b", 0),
        FeederConfig::new("c", 3),
        FeederConfig::new("d", 0),
    ];
    let mut p = Printer::new(&c);
    assert_eq!(t(&mut p, "Sk;f"), "MA");
    assert_eq!(t(&mut p, "Sk;w"), "MF");
    assert!(has(st(&p).inf, 13) && has(st(&p).inf, 15) && has(st(&p).inf, 16));
}

#[test]
fn boxes_fill_up() {
    let mut c = config("evolis-km500b");
    c.reject_capacity = 1;
    c.hopper_capacity = 1;
    let mut p = Printer::new(&c);
    insert(&mut p);
    ok(&mut p, "Ser");
    assert_eq!(t(&mut p, "Rlr;h"), "CARD");
    assert!(has(st(&p).err, 4) && has(st(&p).war, 1));
    insert(&mut p);
    assert_eq!(t(&mut p, "Ser"), REJECT_BOX_FULL);
    p.clear(Some("reject-full"), 0).unwrap();
    assert_eq!(
        t(&mut p, "Rlr;h"),
        "OK",
        "clearing reject-full empties the box"
    );
    // Without a bezel the card goes to the hopper, until it is full.
    p.set_option("bezel", false).unwrap();
    ok(&mut p, "Se");
    assert_eq!(p.hopper.count, 1);
    assert!(has(st(&p).err, 6));
    insert(&mut p);
    assert_eq!(t(&mut p, "Se"), HOPPER_FULL);
    assert!(p.set_option("emboss", true).is_err());
    assert!(p.set_option("wings", true).is_err());
}

#[test]
fn customer_refuses_and_the_agent_retracts() {
    let mut c = config("evolis-km500b");
    c.customer = Customer::Refuse;
    let mut p = Printer::new(&c);
    insert(&mut p);
    let o = outcome(&mut p, "Se");
    assert_eq!(
        o.effects,
        vec![Effect::Presented {
            card: 1,
            take_after: None
        }]
    );
    assert_eq!(p.snapshot(0).customer_verdict.as_deref(), Some("refused"));
    assert!(!p.customer_take(1, 0).0);
    insert(&mut p);
    assert_eq!(
        t(&mut p, "Se"),
        ERROR_TIME_OUT,
        "the bezel is still occupied"
    );
    ok(&mut p, "Ser");
    assert_eq!(
        p.cards[1].record.place,
        Place::RejectBox,
        "the card inside goes first"
    );
    ok(&mut p, "Ser");
    assert_eq!(
        p.cards[0].record.place,
        Place::RejectBox,
        "then the one in the bezel"
    );
    assert!(p.cards[0].record.refused);
    ok(&mut p, "Ser");
    assert_eq!(
        p.counters.rejected, 2,
        "nothing to reject is no error and no count"
    );
    // A customer who changes their mind.
    insert(&mut p);
    ok(&mut p, "Se");
    assert_eq!(
        p.set_customer(Customer::TakeAfter(5)),
        vec![Effect::Presented {
            card: 3,
            take_after: Some(5)
        }]
    );
    assert!(p.customer_take(3, 0).0);
}

#[test]
fn downloads_decode_or_refuse() {
    let mut p = km();
    let g = Geometry::default();
    let mut bm = Bitmap::blank(g, Levels::Two);
    for x in 0..100 {
        bm.set(x, 10, 1);
    }
    let data = panel::compress(&bm);
    let dbc = |panel: &str, levels: u32, data: Vec<u8>| {
        Command::new("Dbc")
            .param(panel)
            .param(levels)
            .param(data.len())
            .with_payload(Bytes::from(data))
    };
    let r = p
        .handle(&Inbound::Command(dbc("k", 2, data.clone())), 0)
        .reply
        .unwrap();
    assert_eq!(r, Reply::Text("OK".into()));
    let r = p
        .handle(&Inbound::Command(dbc("k", 2, vec![9; 10])), 0)
        .reply
        .unwrap();
    assert_eq!(
        r,
        Reply::Text(ERROR_PARAMETRES.into()),
        "data that does not decompress"
    );
    let r = p
        .handle(&Inbound::Command(dbc("k", 32, data.clone())), 0)
        .reply
        .unwrap();
    assert_eq!(
        r,
        Reply::Text(ERROR_PARAMETRES.into()),
        "K is one bit a pixel"
    );
    let raw = Command::new("Db")
        .param("y")
        .param(32)
        .with_payload(Bytes::from(vec![0u8; g.raw_len(Levels::L32)]));
    assert_eq!(
        p.handle(&Inbound::Command(raw), 0).reply.unwrap(),
        Reply::Text("OK".into())
    );
    insert(&mut p);
    ok(&mut p, "Sp;k");
    ok(&mut p, "Sp;y");
    assert_eq!(p.cards[0].record.panels[0].inked, 100);
    assert_eq!(p.cards[0].images.len(), 2);
    ok(&mut p, "Pr;ko");
    assert_eq!(
        t(&mut p, "Sp;y"),
        ERROR_PARAMETRES,
        "no Y panel on a KO ribbon"
    );
    assert_eq!(t(&mut p, "Rr"), "ko");
}

#[test]
fn ribbon_runs_out() {
    let mut c = config("evolis-km500b");
    c.ribbon_cards = 1;
    let mut p = Printer::new(&c);
    assert_eq!(p.ribbon.panels_left, 5);
    insert(&mut p);
    for panel in ["y", "m", "c", "k", "o"] {
        ok(&mut p, &format!("Sp;{panel}"));
    }
    assert_eq!(t(&mut p, "Sp;k"), ERROR_RIBBON);
    assert!(has(st(&p).err, 5));
    assert_eq!(t(&mut p, "Rco;l"), "0");
    assert_eq!(t(&mut p, "Rcr"), ERROR_RIBBON);
}

#[test]
fn maintenance_commands() {
    let mut c = config("evolis-km500b");
    c.cleaning_interval = 1;
    let mut p = Printer::new(&c);
    insert(&mut p);
    // A card counts towards cleaning once it has left the path.
    assert!(!has(st(&p).inf, 8));
    ok(&mut p, "Ser");
    assert!(has(st(&p).inf, 8));
    assert!(!has(st(&p).inf, 9));
    insert(&mut p);
    // The flag was clear when this card came in: it prints.
    ok(&mut p, "Sp;k");
    ok(&mut p, "Ser");
    assert!(has(st(&p).inf, 9));
    insert(&mut p);
    assert_eq!(t(&mut p, "Rlr;r"), "ERR NEED CLEANING");
    assert_eq!(t(&mut p, "Sp;k"), NEED_CLEANING);
    ok(&mut p, "Scp");
    assert_eq!(t(&mut p, "Rlr;r"), "OK");
    assert_eq!(t(&mut p, "Rco;n"), "1");
    ok(&mut p, "Ser");
    ok(&mut p, "St");
    assert!(p.cards[3].record.test_card);
    assert_eq!(p.cards[3].record.place, Place::Hopper);
    ok(&mut p, "Srs");
    assert!(has(st(&p).inf, 11));
    ok(&mut p, "Scs");
    assert!(!has(st(&p).inf, 11));
    ok(&mut p, "Sdm;10");
    ok(&mut p, "Ss");
    ok(&mut p, "Sv");
    ok(&mut p, "Sr");
}

#[test]
fn options_switched_off_at_runtime() {
    let mut p = km();
    insert(&mut p);
    for (opt, frame) in [
        ("mag", "Smw"),
        ("mag", "Dm;2;1"),
        ("smart", "Sis"),
        ("reject", "Ser"),
    ] {
        p.set_option(opt, false).unwrap();
        assert_eq!(t(&mut p, frame), OPT_NOT_AVAILABLE, "{opt}");
        assert!(has(st(&p).err, 17));
        assert!(!has(
            st(&p).cfg,
            match opt {
                "mag" => 2,
                "smart" => 0,
                _ => 6,
            }
        ));
        p.set_option(opt, true).unwrap();
    }
    let cfg = st(&p).cfg;
    assert!(
        has(cfg, 0)
            && has(cfg, 2)
            && has(cfg, 4)
            && has(cfg, 5)
            && has(cfg, 6)
            && has(cfg, 8)
            && !has(cfg, 16)
    );
    assert!(has(st(&ie4()).cfg, 16));
}

#[test]
fn mechanism_time_scales_with_speed() {
    let mut c = config("evolis-km500b");
    c.speed = 1.0;
    let mut p = Printer::new(&c);
    assert_eq!(outcome(&mut p, "Si").work_ms, 1500);
    assert!(has(p.status_words(100).inf, 6), "busy while working");
    assert!(!has(p.status_words(2000).inf, 6));
    assert_eq!(outcome(&mut p, "Sp;y").work_ms, 2500);
    assert_eq!(outcome(&mut p, "Sp;k").work_ms, 1500);
    c.speed = 0.5;
    let mut p = Printer::new(&c);
    assert_eq!(outcome(&mut p, "Si").work_ms, 750);
    assert_eq!(outcome(&mut km(), "Si").work_ms, 0);
}

#[test]
fn scenario_steps_fire_once_for_their_card() {
    let mut c = config("evolis-km500b");
    c.scenario = Some(
        Scenario::parse(
            "t",
            "[[at]]\ncard=2\nstep='magnetic'\nraise='mag-write-fail'\n[[at]]\ncard=3\nclear='mag-write-fail'\n[[at]]\ncard=3\nstep='eject'\nraise='hopper-door-open'\n[[at]]\ncard=4\nraise='feeder-jam'\n",
        )
        .unwrap(),
    );
    let mut p = Printer::new(&c);
    let card = |p: &mut Printer| -> (String, String) {
        let i = t(p, "Si");
        if i != "OK" {
            return (i, String::new());
        }
        ok(p, "Dm;2;123");
        let m = t(p, "Smw");
        let e = t(p, "Se");
        p.take(0);
        if e != "OK" {
            ok(p, "Ser");
        }
        (m, e)
    };
    assert_eq!(card(&mut p), ("OK".into(), "OK".into()));
    assert_eq!(card(&mut p), (ERROR_MAG.into(), "OK".into()));
    assert_eq!(card(&mut p), ("OK".into(), HOPPER_DOOR.into()));
    assert_eq!(card(&mut p).0, CARD_JAM);
}

/// Random command sequences never break the physical rules, whatever the faults.
#[test]
fn a_card_is_never_in_two_places() {
    const FRAMES: &[&str] = &[
        "Si", "Si", "Sis", "Sic", "Dm;2;123", "Smw", "Smr;2", "Sp;k", "Sp;y", "Se", "Se", "Ser",
        "St", "Srs", "Xee", "Rst", "Rlr;p",
    ];
    const FAULTS: &[&str] = &[
        "feeder-jam",
        "hopper-jam",
        "hopper-full",
        "reject-full",
        "cover-open",
        "ribbon-ended",
        "mag-write-fail",
        "silent",
        "power-cycle",
    ];
    for model in ["evolis-km500b", "instant-embosser-ie4"] {
        let mut c = config(model);
        c.feeders = (0..c.profile.feeders)
            .map(|_| FeederConfig::new("blank", 15))
            .collect();
        c.reject_capacity = 5;
        c.hopper_capacity = 5;
        let total = 15 * c.profile.feeders as u32;
        let mut p = Printer::new(&c);
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |n: usize| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize % n
        };
        for step in 0..3000u64 {
            match next(20) {
                0 => {
                    let _ = p.raise(FAULTS[next(FAULTS.len())].parse().unwrap(), 0);
                }
                1 => {
                    let _ = p.clear(None, step);
                }
                2 => {
                    let _ = p.take(step);
                }
                3 => {
                    let _ = p.set_option("bezel", next(2) == 0);
                }
                _ => {
                    let _ = p.handle(&Inbound::Command(cmd(FRAMES[next(FRAMES.len())])), step);
                }
            }
            check_invariants(&p, total);
        }
        let s = p.snapshot(0);
        assert!(
            s.counters.inserted > 5,
            "{model}: the sequence did exercise cards ({:?})",
            s.counters
        );
        assert_eq!(
            s.counters.taken as usize,
            s.cards.iter().filter(|c| c.place == Place::Taken).count()
        );
    }
}

/// Whatever bytes arrive, the decoder and the firmware answer and go on.
#[test]
fn random_input_never_panics() {
    use tokio_util::codec::Decoder;
    const WORDS: &[&[u8]] = &[
        b"\x1bSi\r",
        b"\x1bSis\r",
        b"\x1bSe\r",
        b"\x1bSer\r",
        b"\x1bSp;",
        b"\x1bDm;",
        b"\x1bWt;",
        b"\x1bXel;",
        b"\x1bDbc;k;2;",
        b"\x1bDb;y;32;",
        b"\x1bRlr;",
        b"\x1bPem;",
        b"\x1bSk;",
        b"\x1bRco;",
        b"\x1bSmr;",
        b";",
        b"\r",
        b"0",
        b"1",
        b"18",
        b"k",
        b"\x00",
        b"\xff",
        b"4000001234567899",
    ];
    for model in ["evolis-km500b", "instant-embosser-ie4"] {
        let mut c = config(model);
        c.profile.geometry = Geometry {
            width: 16,
            height: 4,
        };
        let mut p = Printer::new(&c);
        let mut codec = dialect::CommandCodec::new(c.profile.geometry);
        let mut buf = bytes::BytesMut::new();
        let (mut frames, mut oks) = (0u64, 0u64);
        let mut seed: u64 = 7;
        let mut next = |n: usize| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize % n
        };
        for step in 0..60_000u64 {
            if next(3) == 0 {
                buf.extend_from_slice(&[next(256) as u8]);
            } else {
                buf.extend_from_slice(WORDS[next(WORDS.len())]);
            }
            if next(500) == 0 {
                let _ = p.raise(
                    [
                        "garbage:2",
                        "cover-open",
                        "feeder-jam",
                        "hopper-jam",
                        "slow:1",
                    ][next(5)]
                    .parse()
                    .unwrap(),
                    step,
                );
            }
            if next(300) == 0 {
                let _ = p.clear(None, step);
            }
            while let Ok(Some(item)) = codec.decode(&mut buf) {
                let o = p.handle(&item, step);
                if o.reply == Some(Reply::Text("OK".into())) {
                    oks += 1;
                }
                frames += 1;
            }
        }
        assert!(
            frames > 5_000 && oks > 100,
            "{model}: {frames} frames, {oks} OK: the input did reach the commands"
        );
    }
}

// ---- power: silent and power-cycle ---------------------------------------

/// The frame at `now`; its reply (None: nothing goes back).
fn at(p: &mut Printer, frame: &str, now: u64) -> Option<Reply> {
    p.handle(&Inbound::Command(cmd(frame)), now).reply
}

/// The alarm a raise asked the shell for.
fn wake(effects: &[Effect]) -> (u64, Alarm) {
    match effects {
        [Effect::Wake { after_ms, alarm }] => (*after_ms, *alarm),
        other => panic!("expected one Wake effect, got {other:?}"),
    }
}

fn places(p: &Printer) -> Vec<Place> {
    p.cards.iter().map(|c| c.record.place).collect()
}

#[test]
fn silent_swallows_every_frame_and_moves_nothing() {
    let mut c = config("evolis-km500b");
    c.scenario =
        Some(Scenario::parse("t", "[[at]]\ncard=1\nstep='eject'\nraise='cover-open'\n").unwrap());
    let mut p = Printer::new(&c);
    ok(&mut p, "Pem;2");
    insert(&mut p);
    ok(&mut p, "Dm;2;123");
    let (before, counters, card_events) = (places(&p), p.counters, p.cards[0].record.events.len());

    assert_eq!(
        p.raise(Condition::Silent(None), 10),
        vec![],
        "no timer without a duration"
    );
    assert_eq!(p.power(), crate::state::Power::Silent);
    assert_eq!(p.snapshot(10).power, crate::state::Power::Silent);
    for frame in [
        "Rtp", "Rsn", "Rst", "Rlr;p", "Se", "Ser", "Si", "Sis", "Smw", "Pem;18", "Zz",
    ] {
        let o = p.handle(&Inbound::Command(cmd(frame)), 20);
        assert_eq!(o.reply, None, "{frame} answered while silent");
        assert_eq!(o.effects, vec![], "{frame} had an effect while silent");
        assert_eq!(o.work_ms, 0);
    }
    let junk = Inbound::Malformed {
        raw: b"\x1b\xff\r".to_vec(),
        why: "test".into(),
    };
    assert_eq!(p.handle(&junk, 20).reply, None);
    assert_eq!(places(&p), before, "no card moved");
    assert_eq!(p.counters, counters);
    assert_eq!(p.cards[0].record.events.len(), card_events);
    assert!(
        !p.has(Condition::CoverOpen),
        "the eject trigger did not fire: no eject happened"
    );
    assert!(p
        .snapshot(20)
        .events
        .iter()
        .any(|e| e.what.starts_with("power off: silent")));

    // Cleared: the printer carries on where it was, nothing lost.
    assert_eq!(p.clear(Some("silent"), 30).unwrap(), vec![]);
    assert_eq!(p.power(), crate::state::Power::On);
    assert_eq!(t(&mut p, "Rem"), "2;0");
    assert_eq!(t(&mut p, "Rlr;p"), "CARD");
    ok(&mut p, "Smw");
    assert_eq!(
        p.cards[0].record.tracks.len(),
        1,
        "the loaded track survived the silence"
    );
    assert!(!has(st(&p).inf, 11), "a silence is no restart");

    // With a duration: a timer, and only the latest one ends the silence.
    let (ms, first) = wake(&p.raise("silent:300".parse().unwrap(), 40));
    assert_eq!(ms, 300, "not scaled by speed");
    let (_, second) = wake(&p.raise("silent:300".parse().unwrap(), 50));
    assert_eq!(p.alarm(first, 340), vec![]);
    assert_eq!(
        at(&mut p, "Rsn", 341),
        None,
        "an old timer does not end a newer silence"
    );
    p.alarm(second, 350);
    assert_eq!(
        at(&mut p, "Rsn", 351),
        Some(Reply::Text("SIM000001".into()))
    );
    // `clear` with no name ends it too.
    p.raise(Condition::Silent(None), 400);
    p.clear(None, 410).unwrap();
    assert_eq!(t(&mut p, "Rtp"), "KM500B");
}

#[test]
fn a_reply_in_progress_is_lost_when_the_printer_goes_off() {
    let mut c = config("evolis-km500b");
    c.speed = 1.0;
    let mut p = Printer::new(&c);
    let o = outcome(&mut p, "Scp");
    assert!(o.work_ms > 0 && p.reply_stands(o.power_epoch));
    p.raise(Condition::Silent(None), 5);
    p.clear(Some("silent"), 6).unwrap();
    assert!(
        !p.reply_stands(o.power_epoch),
        "the printer was off meanwhile"
    );
    let o = outcome(&mut p, "Rtp");
    assert!(p.reply_stands(o.power_epoch));
}

#[test]
fn the_customer_waits_while_the_printer_is_off() {
    let mut p = km();
    insert(&mut p);
    ok(&mut p, "Se");
    p.raise(Condition::Silent(None), 10);
    assert_eq!(p.customer_take(1, 20), (false, vec![]));
    assert_eq!(p.cards[0].record.place, Place::Bezel);
    assert_eq!(
        p.clear(Some("silent"), 30).unwrap(),
        vec![Effect::Presented {
            card: 1,
            take_after: Some(0)
        }],
        "the customer takes it once the printer is back"
    );
    assert!(p.customer_take(1, 31).0);
}

#[test]
fn boot_time_default_scales_with_speed_and_an_argument_does_not() {
    let mut c = config("evolis-km500b");
    for (speed, default) in [(1.0, 1500), (0.5, 750), (0.0, 50), (0.01, 50)] {
        c.speed = speed;
        let p = Printer::new(&c);
        assert_eq!(p.boot_ms(None), default, "speed {speed}");
        assert_eq!(p.boot_ms(Some(3000)), 3000, "speed {speed}");
    }
    let mut p = km();
    assert_eq!(wake(&p.raise(Condition::PowerCycle(None), 0)).0, 50);
    assert_eq!(
        wake(&p.raise("power-cycle:2500".parse().unwrap(), 0)).0,
        2500
    );
}

#[test]
fn power_cycle_boots_silent_then_answers_with_unsaved_settings_lost() {
    let mut c = config("evolis-km500b");
    c.customer = Customer::Never;
    let mut p = Printer::new(&c);
    // Host error management with ACK/NACK, not saved.
    assert_eq!(at(&mut p, "Pem;2", 0), Some(Reply::Text("OK".into())));
    assert_eq!(at(&mut p, "Pem;4", 0), Some(Reply::Text("OK".into())));
    assert_eq!(at(&mut p, "Pmi;F", 0), Some(Reply::Ack));
    assert_eq!(at(&mut p, "Piem;2;0", 0), Some(Reply::Ack));
    assert_eq!(at(&mut p, "Si", 0), Some(Reply::Ack));
    assert_eq!(at(&mut p, "Sis", 0), Some(Reply::Ack));
    assert_eq!(at(&mut p, "Dm;2;123", 0), Some(Reply::Ack));
    assert_eq!(at(&mut p, "Wcb;k", 0), Some(Reply::Ack));
    let counters = p.counters;

    let (boot, alarm) = wake(&p.raise(Condition::PowerCycle(None), 100));
    assert_eq!(boot, 50, "speed 0: the shortest boot");
    let s = p.snapshot(101);
    assert_eq!(s.power, crate::state::Power::Booting);
    assert_eq!(s.conditions, vec!["power-cycle"]);
    assert_eq!(s.error_mode, 0, "back to the saved mode");
    assert!(s
        .events
        .iter()
        .any(|e| e.what.starts_with("power cycle: power off")));
    for frame in ["Rst", "Rem", "Rlr;p", "Ser", "Se", "Pem;2"] {
        assert_eq!(
            at(&mut p, frame, 120),
            None,
            "{frame} answered while booting"
        );
    }
    assert_eq!(
        p.cards[0].record.place,
        Place::SmartStation,
        "the card stays put"
    );

    p.alarm(alarm, 150);
    let s = p.snapshot(150);
    assert_eq!(s.power, crate::state::Power::On);
    assert!(s.conditions.is_empty());
    assert!(s.events.iter().any(|e| e.what.starts_with("booted")));
    // Text words again, not ACK/NACK; Rem answers the saved mode.
    assert_eq!(at(&mut p, "Rem", 151), Some(Reply::Text("0;0".into())));
    assert_eq!(at(&mut p, "Pmi;F", 151), Some(Reply::Text("OK".into())));
    assert_eq!(at(&mut p, "Zz", 151), Some(Reply::Text(ERROR_CDE.into())));
    // The card is still under the contacts and reported there.
    assert_eq!(t(&mut p, "Rlr;p"), "SMART CARD");
    assert!(p.cards[0]
        .record
        .events
        .iter()
        .any(|e| e.what == "power cycle: stays at smart station"));
    // RAM lost: the feeder choice, the loaded track, the bitmap.
    assert_eq!(p.selected_feeder, 0);
    assert!(p.pending_tracks.0.iter().all(Option::is_none));
    assert!(p.loaded.is_empty());
    ok(&mut p, "Smw");
    assert!(
        p.cards[0].record.tracks.is_empty(),
        "nothing was loaded any more"
    );
    // Counters survive.
    assert_eq!(p.counters, counters);

    // Just rebooted: in exactly one Rst answer, with the card's position.
    let first = t(&mut p, "Rst");
    let words = dialect::status::parse_status_words(&first).unwrap();
    assert!(words.bit("INF", 11), "{first}");
    assert!(words.bit("INF", 1), "card at the print position: {first}");
    for _ in 0..2 {
        let again = t(&mut p, "Rst");
        let words = dialect::status::parse_status_words(&again).unwrap();
        assert!(!words.bit("INF", 11), "{again}");
    }
}

#[test]
fn a_saved_error_mode_survives_a_power_cycle() {
    let mut p = km();
    ok(&mut p, "Pem;2;s");
    assert_eq!(p.snapshot(0).saved_error_mode, 2);
    // Not saved on top of it: lost at the cycle, the saved one comes back.
    ok(&mut p, "Pem;18");
    assert_eq!(t(&mut p, "Rem"), "18;2");
    let (_, alarm) = wake(&p.raise(Condition::PowerCycle(None), 0));
    p.alarm(alarm, 60);
    assert_eq!(t(&mut p, "Rem"), "2;2");
    assert_eq!(send(&mut p, "Pmi;F"), Reply::Text("OK".into()));
    // ACK/NACK saved on top of host mode: it answers ACK after the cycle.
    assert_eq!(send(&mut p, "Pem;4;s"), Reply::Text("OK".into()));
    p.raise(Condition::PowerCycle(None), 100);
    p.clear(Some("power-cycle"), 110).unwrap();
    assert_eq!(t(&mut p, "Rem"), "2;2");
    assert_eq!(send(&mut p, "Pmi;F"), Reply::Ack);
    // A bad save flag or a value outside the guide's list changes nothing.
    assert_eq!(send(&mut p, "Pem;2;x"), Reply::Nack(b'2'));
    assert_eq!(send(&mut p, "Pem;6"), Reply::Nack(b'2'));
    assert_eq!(send(&mut p, "Pem;02"), Reply::Nack(b'2'));
    assert_eq!(t(&mut p, "Rem"), "2;2");
}

#[test]
fn a_presented_card_stays_in_the_bezel_through_a_power_cycle() {
    let mut c = config("evolis-km500b");
    c.customer = Customer::TakeAfter(500);
    let mut p = Printer::new(&c);
    insert(&mut p);
    ok(&mut p, "Se");
    let (_, alarm) = wake(&p.raise(Condition::PowerCycle(Some(1000)), 10));
    // The customer's timer runs out during the boot: they wait.
    assert_eq!(p.customer_take(1, 510), (false, vec![]));
    assert_eq!(p.cards[0].record.place, Place::Bezel);
    let resumed = p.alarm(alarm, 1010);
    assert_eq!(
        resumed,
        vec![Effect::Presented {
            card: 1,
            take_after: Some(0)
        }]
    );
    assert_eq!(t(&mut p, "Rlr;p"), "CARD");
    let words = dialect::status::parse_status_words(&t(&mut p, "Rst")).unwrap();
    assert!(words.bit("INF", 4) && words.bit("INF", 11));
    assert!(p.customer_take(1, 1011).0);
    assert_eq!(p.cards[0].record.place, Place::Taken);
}

#[test]
fn power_cycle_timers_and_clearing() {
    let mut p = km();
    let (_, old) = wake(&p.raise(Condition::PowerCycle(Some(100)), 0));
    // Raised again during the boot: the boot starts over.
    let (_, new) = wake(&p.raise(Condition::PowerCycle(Some(100)), 50));
    assert_eq!(p.alarm(old, 100), vec![]);
    assert_eq!(
        at(&mut p, "Rtp", 101),
        None,
        "the old timer did not end the new boot"
    );
    p.alarm(new, 150);
    assert_eq!(at(&mut p, "Rtp", 151), Some(Reply::Text("KM500B".into())));
    // An insertion does not hide the restart; Scs does.
    insert(&mut p);
    assert!(has(st(&p).inf, 11));
    ok(&mut p, "Scs");
    assert!(!has(st(&p).inf, 11));
    // Silent during a boot: the printer answers once both are over.
    let (_, boot) = wake(&p.raise(Condition::PowerCycle(Some(100)), 200));
    p.raise(Condition::Silent(None), 210);
    p.alarm(boot, 300);
    assert_eq!(p.power(), crate::state::Power::Silent);
    assert_eq!(at(&mut p, "Rtp", 301), None);
    p.clear(Some("silent"), 310).unwrap();
    assert_eq!(at(&mut p, "Rtp", 311), Some(Reply::Text("KM500B".into())));
    let rebooted = |s: &str| {
        dialect::status::parse_status_words(s)
            .unwrap()
            .bit("INF", 11)
    };
    assert!(rebooted(&t(&mut p, "Rst")));
    // Clearing a condition that is not raised is no restart.
    p.clear(Some("power-cycle"), 320).unwrap();
    assert!(!has(st(&p).inf, 11));
    // `Srs` reports a restart the same way: read-to-clear.
    ok(&mut p, "Srs");
    assert!(rebooted(&t(&mut p, "Rst")));
    assert!(!rebooted(&t(&mut p, "Rst")));
}

#[test]
fn a_scenario_step_can_power_cycle_the_printer_under_a_command() {
    let mut c = config("evolis-km500b");
    c.scenario = Some(
        Scenario::parse(
            "t",
            "[[at]]\ncard=1\nstep='eject'\nraise='power-cycle:200'\n",
        )
        .unwrap(),
    );
    let mut p = Printer::new(&c);
    insert(&mut p);
    let o = p.handle(&Inbound::Command(cmd("Se")), 10);
    assert_eq!(o.reply, None, "the printer went off as the command arrived");
    let (ms, alarm) = wake(&o.effects);
    assert_eq!(ms, 200);
    assert_eq!(
        p.cards[0].record.place,
        Place::Inside,
        "the eject never happened"
    );
    p.alarm(alarm, 210);
    assert_eq!(t(&mut p, "Rlr;p"), "CARD");
}

// ---- commands outside the guide, per profile --------------------------

fn older() -> Printer {
    Printer::new(&config("evolis-km500b-older"))
}

#[test]
fn a_firmware_refuses_the_commands_its_profile_lacks() {
    let mut p = older();
    // No status words, and a refused `Rst` clears nothing it would report.
    assert_eq!(t(&mut p, "Rst"), ERROR_CDE);
    // The guide's sensors answer; f, n and b are unknown to this firmware.
    for s in ["c", "m", "o", "p", "r"] {
        assert!(
            dialect::status::parse_voltage(&t(&mut p, &format!("Rse;{s}"))).is_ok(),
            "Rse;{s}"
        );
    }
    for s in ["f", "n", "b"] {
        assert_eq!(t(&mut p, &format!("Rse;{s}")), ERROR_CDE, "Rse;{s}");
    }
    // A letter no sensor has stays a parameter error.
    assert_eq!(t(&mut p, "Rse;z"), ERROR_PARAMETRES);
    // Reads keep answering text in ACK/NACK mode.
    ok(&mut p, "Pem;2");
    assert_eq!(send(&mut p, "Pem;4"), Reply::Text(OK.into()));
    assert_eq!(t(&mut p, "Rst"), ERROR_CDE);
    assert_eq!(t(&mut p, "Rse;b"), ERROR_CDE);
    // The default profile still answers all of them.
    let mut km = km();
    assert!(dialect::status::parse_status_words(&t(&mut km, "Rst")).is_ok());
    for s in ["f", "n", "b"] {
        assert!(dialect::status::parse_voltage(&t(&mut km, &format!("Rse;{s}"))).is_ok());
    }
}

#[test]
fn the_older_firmware_answers_rlr_p_with_no_card_or_err_card() {
    let mut p = older();
    assert_eq!(t(&mut p, "Rlr;p"), "NO CARD");
    insert(&mut p);
    assert_eq!(t(&mut p, "Rlr;p"), "ERR CARD", "inside");
    ok(&mut p, "Sis");
    assert_eq!(t(&mut p, "Rlr;p"), "ERR CARD", "at the smart station");
    ok(&mut p, "Se");
    assert_eq!(t(&mut p, "Rlr;p"), "ERR CARD", "waiting in the bezel");
    ok(&mut p, "Ser");
    assert_eq!(t(&mut p, "Rlr;p"), "NO CARD", "in the reject box");
    // A card jammed at the feeder is in the printer too.
    p.raise(Condition::FeederJam, 0);
    ok(&mut p, "Pmi;F");
    assert_eq!(t(&mut p, "Si"), CARD_JAM);
    assert_eq!(t(&mut p, "Rlr;p"), "ERR CARD", "jammed");
    // The newer words are unchanged on the default profile.
    let mut km = km();
    assert_eq!(t(&mut km, "Rlr;p"), "OK");
    insert(&mut km);
    assert_eq!(t(&mut km, "Rlr;p"), "CARD");
}
