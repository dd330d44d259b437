//! The 22 printer and production codes, each derived by the agent from a
//! physical condition injected into the simulator, over a real pseudo-terminal
//! (and the chip over the real PC/SC stack).
//!
//! Every row runs twice where it makes sense: with the condition present
//! before the card starts (the agent's readiness check or the step meets it)
//! and raised just before the step it bites (the printer's reply word meets
//! it). Each run also checks the simulator's ground truth: no card reached the
//! customer, and a card that went in was put in the reject box.

mod common;

use common::*;
use printer_sim::{Condition, Customer, Place};
use satellite::codes::ErrorCode::{self, *};
use satellite::printer::steps::CardWhere;
use std::collections::BTreeSet;

#[derive(Clone, Copy)]
enum Inject {
    Raise(&'static str),
    OptionOff(&'static str),
    Customer(fn() -> Customer),
}

struct Row {
    code: ErrorCode,
    inject: Inject,
    /// The step the condition bites at (for the second run).
    at: Step,
    model: &'static str,
    /// Run only with the condition present before the card starts.
    before_only: bool,
}

const KM: &str = "evolis-km500b";
const IE: &str = "instant-embosser-ie4";

fn row(code: ErrorCode, inject: Inject, at: Step) -> Row {
    Row {
        code,
        inject,
        at,
        model: KM,
        before_only: false,
    }
}

fn rows() -> Vec<Row> {
    use Inject::*;
    vec![
        row(
            PRT_NOT_REACHABLE,
            Raise("unreachable:60000"),
            Step::Magnetic,
        ),
        row(PRT_SETUP_ERROR, OptionOff("mag"), Step::Magnetic),
        row(PRT_TIMEOUT, Raise("slow:5000"), Step::Print),
        row(PRT_RIBBON, Raise("ribbon-error"), Step::Print),
        row(PRT_LOCK_ERROR, Raise("locked"), Step::Insert),
        row(PRT_RIBBON_MISSING, Raise("ribbon-missing"), Step::Print),
        row(PRT_RIBBON_ENDED, Raise("ribbon-ended"), Step::Print),
        row(PRT_COVER_OPEN, Raise("cover-open"), Step::Magnetic),
        row(PRT_PAUSED, Raise("paused"), Step::Insert),
        row(PRD_UNEXPECTED_DATA, Raise("garbage"), Step::Print),
        row(PRD_FEEDER_EMPTY, Raise("feeder-empty"), Step::Insert),
        row(PRD_FEEDER_JAM, Raise("feeder-jam"), Step::Insert),
        row(PRD_HOPPER_FULL, Raise("hopper-full"), Step::Present),
        row(PRD_HOPPER_DOOR, Raise("hopper-door-open"), Step::Present),
        row(PRD_HOPPER_JAM, Raise("hopper-jam"), Step::Present),
        row(PRD_MAGSTRIPE, Raise("mag-read-mismatch"), Step::Magnetic),
        row(PRD_SMARTCARD, Raise("chip-mute"), Step::Chip),
        Row {
            model: IE,
            ..row(PRD_EMBOSSER, Raise("emboss-fail"), Step::Emboss)
        },
        Row {
            before_only: true,
            ..row(PRD_TIMEOUT, Customer(customer_never), Step::Take)
        },
        // A full reject box stops production before a card goes in: a spoiled
        // card could not be disposed of.
        Row {
            before_only: true,
            ..row(PRD_REJECT_FULL, Raise("reject-full"), Step::Ready)
        },
        row(
            PRD_SMARTCARD_CARD_NOT_IN_READER,
            Raise("card-not-in-reader"),
            Step::Chip,
        ),
        Row {
            before_only: true,
            ..row(
                PRD_FINAL_VALIDATION_NOK,
                Customer(|| printer_sim::Customer::Refuse),
                Step::Take,
            )
        },
    ]
}

fn apply(sim: &printer_sim::Simulator, inject: Inject) {
    match inject {
        Inject::Raise(c) => sim.raise(
            c.parse::<Condition>()
                .unwrap_or_else(|e| panic!("{c}: {e}")),
        ),
        Inject::OptionOff(o) => sim.set_option(o, false).unwrap(),
        Inject::Customer(f) => sim.set_customer(f()),
    }
}

async fn run_row(r: &Row, at_step: bool) {
    let label = format!(
        "{} ({})",
        r.code,
        if at_step {
            format!("raised at {:?}", r.at)
        } else {
            "present before the card".into()
        }
    );
    let rig = rig(Options {
        model: r.model,
        ..Options::default()
    })
    .await;
    // Connected first: a lost link is a link lost under the agent.
    rig.printer
        .connect()
        .await
        .unwrap_or_else(|f| panic!("{label}: connect: {f}"));
    if !at_step {
        apply(&rig.sim, r.inject);
    }
    let card = test_card();
    let result = produce_one(&rig, &card, |step| {
        if at_step && step == r.at {
            apply(&rig.sim, r.inject);
        }
    })
    .await;
    let fault = match result {
        Err(f) => f,
        Ok(()) => panic!("{label}: the card was produced despite the condition"),
    };
    assert_eq!(fault.code, r.code, "{label}: got {fault}");
    assert!(
        !fault.description.is_empty(),
        "{label}: a fault carries a description"
    );
    assert!(
        !fault.description.contains("4000001234567899"),
        "{label}: card data in {fault}"
    );
    // Recovery, as the engine does after a fault: once the condition is gone,
    // ask the printer where the card is and reject it if it is still in.
    rig.sim.clear(None);
    rig.sim.set_option("mag", true).unwrap();
    let mut located = None;
    for _ in 0..100 {
        match rig.printer.locate_card().await {
            Ok(w) => {
                located = Some(w);
                break;
            }
            // The link may still be coming back.
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    }
    let located = located.unwrap_or_else(|| {
        panic!("{label}: the printer did not come back after the condition cleared")
    });
    if matches!(located, CardWhere::Inside | CardWhere::Presented) {
        rig.printer
            .reject()
            .await
            .unwrap_or_else(|f| panic!("{label}: rejecting after recovery: {f}"));
    }
    // Ground truth: nothing reached the customer, and every card that went in
    // is in the reject box (or was taken out by hand, clearing a feeder jam).
    let state = rig.sim.state();
    assert_eq!(
        state.counters.taken, 0,
        "{label}: a card reached the customer"
    );
    for card in &state.cards {
        assert!(
            matches!(card.place, Place::RejectBox | Place::Removed),
            "{label}: card {} ended at {:?}",
            card.seq,
            card.place
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_printer_and_production_code_is_reachable() {
    require_pcscd();
    let _slot = PCSC.lock().await;
    let rows = rows();
    let covered: BTreeSet<_> = rows.iter().map(|r| r.code).collect();
    let all: BTreeSet<_> = ErrorCode::printer_codes().collect();
    assert_eq!(
        covered, all,
        "the table must cover the 22 PRT_ and PRD_ codes"
    );
    assert_eq!(rows.len(), 22);
    for r in &rows {
        run_row(r, false).await;
        if !r.before_only {
            run_row(r, true).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_without_faults_is_produced_and_taken() {
    require_pcscd();
    let _slot = PCSC.lock().await;
    for model in [KM, IE] {
        let rig = rig(Options {
            model,
            ..Options::default()
        })
        .await;
        produce_one(&rig, &test_card(), |_| {})
            .await
            .unwrap_or_else(|f| panic!("{model}: {f}"));
        let s = rig.sim.state();
        assert_eq!(
            (
                s.counters.inserted,
                s.counters.presented,
                s.counters.taken,
                s.counters.rejected
            ),
            (1, 1, 1, 0),
            "{model}"
        );
        let json = serde_json::to_string(&s).unwrap();
        assert!(
            !json.contains("4000001234567899"),
            "the simulator's state shows a full PAN"
        );
    }
}
