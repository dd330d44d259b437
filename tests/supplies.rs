//! Check before you spend: no blank card is taken for a refusal the agent
//! could see coming. Each case runs the whole agent (real SQLite store, the
//! local API over its socket) against the simulator over a real
//! pseudo-terminal, and counts against the simulator's own record of where
//! every card physically went: cards spent on foreseeable refusals must be 0.

mod common;

use common::kiosk;
use printer_sim::{Customer, SimConfig};
use satellite::api::client::Client;
use satellite::config::{Config, NotReady};
use satellite::request::CardType;
use serde_json::{json, Value};
use std::time::Duration;

struct Kiosk {
    parts: kiosk::Parts,
}

/// A kiosk with a black-and-white card type `debit` (K panel) and a colour
/// card type `colour` (YMCK panels), each in its own feeder of 20 cards.
async fn kiosk(sim: impl FnOnce(&mut SimConfig), not_ready: NotReady) -> Kiosk {
    kiosk_of("evolis-km500b", sim, not_ready).await
}

/// The same on another printer model (its profile and its simulator).
async fn kiosk_of(model: &str, sim: impl FnOnce(&mut SimConfig), not_ready: NotReady) -> Kiosk {
    let parts = kiosk::start(
        |s| {
            let mut m = SimConfig::for_model(model).unwrap();
            m.speed = s.speed;
            m.customer = Customer::TakeAfter(20);
            *s = m;
            sim(s)
        },
        |_, c: &mut Config| {
            c.printer.model = model.into();
            c.production.not_ready = not_ready;
            c.production.queue_limit = 50;
            c.printer.timeouts.take = Some(1500);
            let mut colour: CardType = c.card_types[0].clone();
            colour.id = "colour".into();
            colour.colour = true;
            c.card_types.push(colour);
        },
    )
    .await;
    for (feeder, card_type) in [(1, "debit"), (2, "colour")] {
        let body = json!({ "cardType": card_type, "count": 20 }).to_string();
        let a = parts
            .client
            .put(&format!("/v1/inventory/{feeder}"), body.as_bytes())
            .await
            .unwrap();
        assert_eq!(a.status, 204, "{}", a.body);
    }
    parts
        .sim
        .set_feeder(2, 20, Some("colour"))
        .expect("the simulator has a second feeder");
    Kiosk { parts }
}

fn request(token: &str, n: usize, card_type: &str) -> Value {
    let pan = satellite::request::with_luhn_digit(&format!("40000012345{n:04}")).unwrap();
    kiosk::request_of(token, &pan, card_type)
}

impl Kiosk {
    fn client(&self) -> &Client {
        &self.parts.client
    }

    async fn submit(&self, token: &str, n: usize, card_type: &str) -> (u16, Value) {
        let a = self
            .client()
            .post(
                "/v1/cards",
                request(token, n, card_type).to_string().as_bytes(),
            )
            .await
            .unwrap();
        (a.status, a.body)
    }

    async fn production(&self, token: &str) -> Value {
        self.client()
            .get(&format!("/v1/cards/{token}/production"))
            .await
            .unwrap()
            .body
    }

    /// Waits (bounded) for a final status.
    async fn final_state(&self, token: &str) -> Value {
        for _ in 0..1500 {
            let p = self.production(token).await;
            if matches!(
                p["status"].as_str(),
                Some("PRODUCED" | "PRODUCTION_ERROR" | "REQUEST_ERROR")
            ) {
                return p;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("card {token} never reached a final state");
    }

    /// Waits (bounded) until the engine waits for the printer with `code`,
    /// and returns the health document.
    async fn waiting_with(&self, code: &str) -> Value {
        let mut st = Value::Null;
        for _ in 0..500 {
            st = self.client().get("/v1/status").await.unwrap().body;
            if st["state"] == "waiting_for_printer" && st["engine"]["code"] == code {
                return st;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the engine never waited with {code}: {st}");
    }

    /// `satellite ARGS` against this kiosk, as a technician runs it: its
    /// output (stdout and stderr) without colour.
    async fn cli(&self, args: &[&str]) -> String {
        let dir = self.parts.dir.path();
        let config = dir.join("satellite.toml");
        std::fs::write(&config, Config::local_text(dir, "KIOSK01", "sim")).unwrap();
        let o = kiosk::cli(&self.parts.socket, &config, args).await;
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    }

    /// Cards the simulator took from its feeders, and where they went.
    fn physical(&self) -> (u64, u64, u64) {
        let s = self.parts.sim.state();
        (s.counters.inserted, s.counters.taken, s.counters.rejected)
    }

    async fn stop(self) {
        self.parts.daemon.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleaning_required_stops_production_before_a_card_is_taken() {
    cleaning_required_on("evolis-km500b").await
}

/// Without status words, `Rlr;r` says cleaning is required.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleaning_required_stops_production_on_older_firmware_too() {
    cleaning_required_on("evolis-km500b-older").await
}

async fn cleaning_required_on(model: &str) {
    // Recommended after 3 cards, required after 6.
    let k = kiosk_of(model, |s| s.cleaning_interval = 3, NotReady::Queue).await;
    for i in 0..8 {
        let (status, body) = k.submit(&format!("c{i}"), i, "debit").await;
        assert_eq!(status, 201, "{body}");
    }
    for i in 0..6 {
        assert_eq!(k.final_state(&format!("c{i}")).await["status"], "PRODUCED");
    }
    let st = k.waiting_with("PRT_SETUP_ERROR").await;
    assert!(
        st["engine"]["reason"].as_str().is_some_and(
            |r| r.contains("cleaning required") && r.contains("satellite printer clean")
        ),
        "{st}"
    );
    assert_eq!(
        st["printer"]["notReady"]["reason"], "cleaning-required",
        "{st}"
    );
    // The technician's tools say it, with the next step, and so does a scrape.
    let status = k.cli(&["status"]).await;
    assert!(
        status.contains("cleaning required") && status.contains("satellite printer clean"),
        "{status}"
    );
    let doctor = k.cli(&["doctor"]).await;
    assert!(
        doctor.contains("cleaning required") && doctor.contains("satellite printer clean"),
        "{doctor}"
    );
    let (_, _, metrics) = k.client().get_text("/metrics").await.unwrap();
    assert!(
        metrics.contains(r#"satellite_printer_reason{reason="cleaning-required"} 1"#)
            && metrics.contains(r#"satellite_printer_fault{code="PRT_SETUP_ERROR"} 1"#),
        "{metrics}"
    );
    // The two cards past the cleaning point wait, untouched.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 6..8 {
        assert_eq!(k.production(&format!("c{i}")).await["status"], "READY");
    }
    assert_eq!(k.physical(), (6, 6, 0), "no card spent on NEED CLEANING");
    // A request now is told why it waits.
    let (status, body) = k.submit("c8", 8, "debit").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["errorCode"], "REQUEST_CREATED_BUT_NOT_STARTED",
        "{body}"
    );
    assert!(
        body["description"]
            .as_str()
            .is_some_and(|d| d.contains("cleaning required")),
        "{body}"
    );
    // The technician cleans: the waiting cards are produced.
    let a = k.client().post("/v1/printer/clean", b"{}").await.unwrap();
    assert!(a.status < 300, "{} {}", a.status, a.body);
    for i in 6..9 {
        assert_eq!(k.final_state(&format!("c{i}")).await["status"], "PRODUCED");
    }
    assert_eq!(k.physical(), (9, 9, 0));
    k.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_type_whose_ribbon_is_not_loaded_waits_and_the_others_go_on() {
    let k = kiosk(|s| s.ribbon_type = "kb".into(), NotReady::Queue).await;
    // Colour first: it waits; the black cards behind it are produced.
    let (status, body) = k.submit("colour1", 1, "colour").await;
    assert_eq!(status, 201, "{body}");
    for i in 2..5 {
        k.submit(&format!("mono{i}"), i, "debit").await;
    }
    for i in 2..5 {
        assert_eq!(
            k.final_state(&format!("mono{i}")).await["status"],
            "PRODUCED"
        );
    }
    assert_eq!(k.production("colour1").await["status"], "READY");
    assert_eq!(k.physical(), (3, 3, 0), "no blank card for the colour card");
    // The queue waits on it alone, naming the ribbon.
    let st = k.waiting_with("PRT_RIBBON").await;
    let reason = st["engine"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("colour") && reason.contains("kb ribbon"),
        "{st}"
    );
    // Asked now, a colour request is told why it waits.
    let (_, body) = k.submit("colour5", 5, "colour").await;
    assert_eq!(
        body["errorCode"], "REQUEST_CREATED_BUT_NOT_STARTED",
        "{body}"
    );
    assert!(
        body["description"]
            .as_str()
            .is_some_and(|d| d.contains("kb ribbon")),
        "{body}"
    );
    // A colour ribbon loaded: the colour cards are produced.
    k.parts.sim.load_ribbon("ymcko", 100).unwrap();
    for t in ["colour1", "colour5"] {
        assert_eq!(k.final_state(t).await["status"], "PRODUCED");
    }
    assert_eq!(k.physical(), (5, 5, 0));
    k.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_reject_policy_a_card_whose_ribbon_is_absent_is_refused() {
    let k = kiosk(|s| s.ribbon_type = "kb".into(), NotReady::Reject).await;
    // The published view must have read the ribbon first.
    for _ in 0..500 {
        let p = k.client().get("/v1/printer").await.unwrap().body;
        if p["snapshot"]["ribbon"] == "kb" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, body) = k.submit("colour1", 1, "colour").await;
    assert_eq!(status, 503, "{body}");
    let text = body.to_string();
    assert!(
        text.contains("PRINTER_OR_SATELLITE_NOT_READY") && text.contains("kb ribbon"),
        "{body}"
    );
    // The black card type is served by the loaded ribbon.
    let (status, body) = k.submit("mono2", 2, "debit").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(k.final_state("mono2").await["status"], "PRODUCED");
    assert_eq!(k.physical(), (1, 1, 0));
    k.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ribbon_without_a_cards_worth_of_panels_left_takes_no_card() {
    // One colour card's worth of YMCKO panels: the first colour card uses
    // four of the five (Y, M, C, K), leaving too few for another.
    let k = kiosk(
        |s| {
            s.ribbon_type = "ymcko".into();
            s.ribbon_cards = 1;
        },
        NotReady::Queue,
    )
    .await;
    k.submit("a", 1, "colour").await;
    assert_eq!(k.final_state("a").await["status"], "PRODUCED");
    k.submit("b", 2, "colour").await;
    k.waiting_with("PRT_RIBBON_ENDED").await;
    assert_eq!(k.production("b").await["status"], "READY");
    assert_eq!(
        k.physical(),
        (1, 1, 0),
        "no card spent on a ribbon at its end"
    );
    k.parts.sim.load_ribbon("ymcko", 50).unwrap();
    assert_eq!(k.final_state("b").await["status"], "PRODUCED");
    k.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_feeder_holds_its_card_type_only() {
    let k = kiosk(|_| {}, NotReady::Queue).await;
    k.parts.sim.set_feeder(2, 0, None).unwrap();
    k.submit("colour1", 1, "colour").await;
    k.submit("mono2", 2, "debit").await;
    assert_eq!(k.final_state("mono2").await["status"], "PRODUCED");
    let st = k.waiting_with("PRD_FEEDER_EMPTY").await;
    assert!(
        st["engine"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("feeder 2")),
        "{st}"
    );
    assert_eq!(k.production("colour1").await["status"], "READY");
    assert_eq!(k.physical(), (1, 1, 0));
    k.parts.sim.set_feeder(2, 20, None).unwrap();
    assert_eq!(k.final_state("colour1").await["status"], "PRODUCED");
    k.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_reject_box_stops_production_before_a_card_that_might_need_it() {
    // The box holds one card; the customer leaves the first card, which is
    // retracted into it.
    let k = kiosk(
        |s| {
            s.reject_capacity = 1;
            s.customer = Customer::Never;
        },
        NotReady::Queue,
    )
    .await;
    k.submit("left", 1, "debit").await;
    let p = k.final_state("left").await;
    assert_eq!(p["status"], "PRODUCTION_ERROR", "{p}");
    assert_eq!(k.physical(), (1, 0, 1));
    k.parts.sim.set_customer(Customer::TakeAfter(20));
    k.submit("next", 2, "debit").await;
    k.waiting_with("PRD_REJECT_FULL").await;
    assert_eq!(
        k.physical(),
        (1, 0, 1),
        "no card started with nowhere to reject it"
    );
    k.parts.sim.empty_box("reject").unwrap();
    assert_eq!(k.final_state("next").await["status"], "PRODUCED");
    assert_eq!(k.physical(), (2, 1, 1));
    k.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_output_hopper_stops_production_before_a_card_is_taken() {
    // Bezel-less delivery: cards drop into the output hopper, which holds one.
    let k = kiosk(|s| s.hopper_capacity = 1, NotReady::Queue).await;
    k.parts.sim.set_option("bezel", false).unwrap();
    k.submit("first", 1, "debit").await;
    let p = k.final_state("first").await;
    assert_eq!(p["status"], "PRODUCED", "{p}");
    assert_eq!(k.parts.sim.state().hopper.count, 1);
    k.submit("second", 2, "debit").await;
    k.waiting_with("PRD_HOPPER_FULL").await;
    assert_eq!(
        k.physical().0,
        1,
        "no card started with nowhere to deliver it"
    );
    k.parts.sim.empty_box("hopper").unwrap();
    assert_eq!(k.final_state("second").await["status"], "PRODUCED");
    assert_eq!(k.parts.sim.state().hopper.count, 1);
    assert_eq!(k.physical().0, 2);
    k.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_card_that_uses_the_ribbons_last_panel_is_delivered() {
    // The ribbon's end flag rises under the card that printed with its last
    // panel: that card is fine and goes to the customer; the next one waits.
    let k = kiosk(
        |s| {
            s.ribbon_type = "kb".into();
            s.ribbon_cards = 1;
        },
        NotReady::Queue,
    )
    .await;
    k.submit("last", 1, "debit").await;
    let p = k.final_state("last").await;
    assert_eq!(p["status"], "PRODUCED", "{p}");
    k.submit("next", 2, "debit").await;
    k.waiting_with("PRT_RIBBON_ENDED").await;
    assert_eq!(k.physical(), (1, 1, 0));
    k.parts.sim.load_ribbon("kb", 10).unwrap();
    assert_eq!(k.final_state("next").await["status"], "PRODUCED");
    k.stop().await;
}
