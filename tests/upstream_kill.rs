//! SIGKILL while delivering loses nothing: the daemon, a real process, is
//! killed while status changes are on their way to the central base and to
//! the issuer's webhook (the stub, in this test process, answers slowly so
//! that deliveries are in flight), and started again on the same store, over
//! and over. The stub's records and the simulator (both outliving every
//! kill) are the ground truth: every status change of every card arrives at
//! both receivers, first arrivals in the card's order, re-deliveries only
//! under an id already received and with the same content, and no card is
//! produced twice. Each kill's landing (what was in flight) is printed, and
//! the run fails unless enough kills caught a delivery in flight.

mod common;

use common::child::{self, start, status_changes};
use common::upstream as up;
use printer_sim::upstream::{Fault, Group, StubHandle};
use printer_sim::{Customer, SimConfig, Simulator};
use satellite::api::client::Client;
use satellite::store::{Keys, Status, Store};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

const CARDS: usize = 12;
const KILLS: usize = 12;
/// How slowly the stub answers each call: deliveries spend most of their
/// time in flight.
const SLOW_EVENTS_MS: u64 = 300;
const SLOW_WEBHOOK_MS: u64 = 200;
/// Added to one webhook call before each "in flight" kill.
const STRAGGLER_MS: u64 = 600;
/// A kill comes up to this long after a delivery is seen arriving: before
/// the stub answers, while the answer travels, or after it is recorded.
const KILL_WINDOW_MS: u64 = 450;
/// Kills that must catch a delivery in flight (arrived, not yet answered).
const MIN_KILLS_IN_FLIGHT: usize = KILLS / 2;

fn pan(i: usize) -> String {
    up::pan(900 + i as u32)
}

fn holder(i: usize) -> String {
    format!("HOLDER {}", (b'A' + i as u8) as char)
}

/// The configuration: the simulator's pty, the store, and upstream the
/// stub's central base (events only) and its webhook receiver.
fn write_config(dir: &Path, link: &Path, stub: &StubHandle) -> std::path::PathBuf {
    let cb_secret = up::secret(dir, "cb.secret", "stub-secret\n");
    let upstream = format!(
        r#"
[upstream]
backoff_first_ms = 100
backoff_cap_ms = 500
[upstream.central_base]
url = "{base}"
intake = false
events = true
heartbeat_s = 1
timeout_ms = 5000
[upstream.central_base.auth]
token_url = "{token}"
client_id = "satellite"
client_secret_file = "{cb_secret}"
"#,
        base = stub.base_url(),
        token = stub.token_url(),
        cb_secret = cb_secret.display(),
    ) + &child::webhook_sink(dir, stub, "issuer");
    child::write_config(dir, link, &upstream)
}

/// Deliveries that arrived at the stub (since call `since`) and are not
/// answered yet: (events calls, webhook calls).
fn in_flight(stub: &StubHandle, since: u64) -> (usize, usize) {
    let log = stub.control().received();
    let open = |g: Group| {
        log.iter()
            .filter(|r| r.n > since && r.group == Some(g) && r.status.is_none())
            .count()
    };
    (open(Group::Events), open(Group::Webhook))
}

/// The number of the last call the stub received.
fn last_call(stub: &StubHandle) -> u64 {
    stub.control().received().last().map_or(0, |r| r.n)
}

/// What one kill caught.
struct Landing {
    moment: &'static str,
    after_ms: u64,
    events_in_flight: usize,
    webhooks_in_flight: usize,
    /// Cards final in the store at the kill.
    done: usize,
}

/// First arrivals of each id, in arrival order, and the number of
/// re-deliveries; panics on a re-delivery whose content differs.
fn first_arrivals<T: Clone + PartialEq + std::fmt::Debug>(
    what: &str,
    arrivals: impl IntoIterator<Item = (String, T)>,
) -> (Vec<(String, T)>, usize) {
    let mut seen: HashMap<String, T> = HashMap::new();
    let mut first = Vec::new();
    let mut again = 0;
    for (id, content) in arrivals {
        match seen.get(&id) {
            Some(before) => {
                assert_eq!(
                    before, &content,
                    "{what}: {id} delivered again with other content"
                );
                again += 1;
            }
            None => {
                seen.insert(id.clone(), content.clone());
                first.push((id, content));
            }
        }
    }
    (first, again)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_daemon_while_it_delivers_loses_nothing() {
    let began = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    Keys::generate(&dir.path().join("card.key")).unwrap();
    let mut c = SimConfig::for_model("evolis-km500b").unwrap();
    c.speed = 0.02;
    c.customer = Customer::TakeAfter(40);
    let sim = Simulator::new(c);
    let link = sim
        .serve_pty(Some(&dir.path().join("printer")))
        .await
        .unwrap();
    let stub = up::stub().await;
    let control = stub.control();
    control
        .set_fault(Group::Events, Fault::Slow(SLOW_EVENTS_MS), None)
        .await;
    control
        .set_fault(Group::Webhook, Fault::Slow(SLOW_WEBHOOK_MS), None)
        .await;
    let socket = dir.path().join("api.sock");
    let config = write_config(dir.path(), &link, &stub);

    let mut daemon = start(&config, &socket).await;
    let client = Client::new(&socket);
    let a = client
        .put("/v1/inventory/1", br#"{"cardType":"debit","count":100}"#)
        .await
        .unwrap();
    assert_eq!(a.status, 204, "{}", a.body);
    let mut tokens = Vec::new();
    for i in 0..CARDS {
        let token = format!("kill-{i}");
        let mut body = up::request(&token, &pan(i));
        body["cardholderName"] = holder(i).into();
        body["printedLines"] = json!([{ "text": holder(i), "slot": "name" }]);
        let a = client
            .post("/v1/cards", body.to_string().as_bytes())
            .await
            .unwrap();
        assert_eq!(a.status, 201, "{}", a.body);
        tokens.push(token);
    }

    // Kills alternate between two moments (a pseudo-random delay from a
    // fixed seed: the run can be replayed). "in flight": a delivery of this
    // daemon's life has arrived at the stub (a call cut by an earlier kill
    // may stay unanswered), then up to KILL_WINDOW_MS later: before the
    // stub answers, while the answer travels, or once it is recorded.
    // "taken": the stub has just taken the events of a call (its answer is
    // on its way), then 0 or 1 ms later: the agent has likely not recorded
    // the outcome, so the same events must go again (re-delivery).
    let (db, key) = (dir.path().join("s.db"), dir.path().join("card.key"));
    let mut landings = Vec::new();
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut since = last_call(&stub);
    for k in 0..KILLS {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let taken = k % 2 == 1;
        let deadline = Instant::now() + Duration::from_secs(5);
        let after_ms = if taken {
            // Watched closely (the events list is short, cheap to read):
            // the agent records an outcome within a millisecond or two of
            // the answer.
            let from = control.events().len();
            while Instant::now() < deadline && control.events().len() == from {
                tokio::task::yield_now().await;
            }
            state % 2
        } else {
            // One webhook call of the next batch answers far later than its
            // siblings: those answered meanwhile are not recorded until the
            // whole batch is (a kill then sends them again).
            control
                .set_fault(Group::Webhook, Fault::Slow(STRAGGLER_MS), Some(1))
                .await;
            while Instant::now() < deadline && in_flight(&stub, since) == (0, 0) {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            state % KILL_WINDOW_MS
        };
        if after_ms > 0 {
            tokio::time::sleep(Duration::from_millis(after_ms)).await;
        }
        let (events_in_flight, webhooks_in_flight) = in_flight(&stub, since);
        daemon.start_kill().unwrap();
        let _ = daemon.wait().await;
        let done = {
            let store = Store::open(&db, Keys::load(&key).unwrap()).unwrap();
            tokens
                .iter()
                .filter(|t| {
                    matches!(
                        store.job(t).unwrap().map(|j| j.status),
                        Some(Status::Produced | Status::ProductionError)
                    )
                })
                .count()
        };
        landings.push(Landing {
            moment: if taken { "taken" } else { "in flight" },
            after_ms,
            events_in_flight,
            webhooks_in_flight,
            done,
        });
        since = last_call(&stub);
        daemon = start(&config, &socket).await;
    }

    // The last life finishes the cards and empties the outbox.
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let s = client.get("/v1/status").await.unwrap().body;
        let empty = ["central-base", "issuer"]
            .iter()
            .all(|sink| s["outbox"][sink]["depth"] == 0 && s["outbox"][sink]["deadLetters"] == 0);
        let mut final_all = true;
        for t in &tokens {
            let p = client
                .get(&format!("/v1/cards/{t}/production"))
                .await
                .unwrap()
                .body;
            final_all &= matches!(p["status"].as_str(), Some("PRODUCED" | "PRODUCTION_ERROR"));
        }
        if empty && final_all {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every card final and delivered: {s}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // (The last life may have had nothing left to send: "unknown" then.)
    let status = client.get("/v1/status").await.unwrap().body;
    assert_ne!(
        status["upstream"]["central-base"]["state"], "down",
        "{status}"
    );
    daemon.start_kill().unwrap();
    let _ = daemon.wait().await;

    eprintln!("kill  moment     ms after  events in flight  webhooks in flight  cards done");
    for (i, l) in landings.iter().enumerate() {
        eprintln!(
            "{:>4}  {:<9}  {:>8}  {:>16}  {:>18}  {:>10}",
            i + 1,
            l.moment,
            l.after_ms,
            l.events_in_flight,
            l.webhooks_in_flight,
            l.done
        );
    }

    // Every status change of every card, as the store wrote them, reached
    // both receivers: first arrivals exactly those, in the card's order.
    let store = Store::open(&db, Keys::load(&key).unwrap()).unwrap();
    let events = control.events();
    let webhooks = control.webhooks();
    let (mut cb_again, mut wh_again) = (0, 0);
    let mut finals: BTreeMap<String, String> = BTreeMap::new();
    for t in &tokens {
        let changes = status_changes(&store, t);
        let statuses: Vec<&str> = changes.iter().map(|c| c.2.as_str()).collect();
        assert_eq!(statuses.first(), Some(&"READY"), "{t}: {statuses:?}");
        assert!(statuses.contains(&"IN_PROGRESS"), "{t}: {statuses:?}");
        let last = *statuses.last().unwrap();
        assert!(
            matches!(last, "PRODUCED" | "PRODUCTION_ERROR"),
            "{t}: {statuses:?}"
        );
        finals.insert(t.clone(), last.to_string());
        // Exactly one final status per card.
        let final_count = statuses
            .iter()
            .filter(|s| matches!(**s, "PRODUCED" | "PRODUCTION_ERROR"))
            .count();
        assert_eq!(final_count, 1, "{t}: {statuses:?}");

        // The central base: envelopes by production.eventId.
        let (first, again) = first_arrivals(
            &format!("central base, {t}"),
            events
                .iter()
                .filter(|e| e.envelope["production"]["cardToken"] == *t)
                .map(|e| {
                    let id = e.envelope["production"]["eventId"]
                        .as_str()
                        .unwrap()
                        .to_string();
                    (id, e.envelope.clone())
                }),
        );
        cb_again += again;
        let got: Vec<(String, i64, String)> = first
            .iter()
            .map(|(id, env)| {
                let p = &env["production"];
                (
                    id.clone(),
                    p["sequence"].as_i64().unwrap(),
                    p["status"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(got, changes, "central base, {t}: first arrivals");
        // The receiver's reconciled state is the card's final one.
        let latest = control.latest(t).expect("the receiver knows the card");
        assert_eq!(latest.production.unwrap()["status"], last, "{t}");

        // The webhook: messages by webhook-id, each the body of one event.
        let (first, again) = first_arrivals(
            &format!("webhook, {t}"),
            webhooks
                .iter()
                .map(|w| (w.webhook_id.clone(), w.body.clone()))
                .filter(|(_, b)| {
                    serde_json::from_str::<Value>(b).unwrap()["data"]["cardToken"] == *t
                }),
        );
        wh_again += again;
        let got: Vec<(String, i64, String)> = first
            .iter()
            .map(|(id, body)| {
                let d = &serde_json::from_str::<Value>(body).unwrap()["data"];
                let event = d["eventId"].as_str().unwrap().to_string();
                assert_eq!(*id, format!("msg_{}", event.replace('-', "")), "{t}");
                (
                    event,
                    d["sequence"].as_i64().unwrap(),
                    d["status"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(got, changes, "webhook, {t}: first arrivals");
    }
    // Nothing for a card the test did not submit.
    assert!(events.iter().all(|e| tokens
        .iter()
        .any(|t| e.envelope["production"]["cardToken"] == *t)));

    // No card produced twice: one physical card per holder at most, and
    // exactly one for each card the store calls PRODUCED.
    let sim_state = sim.state();
    let mut physical: BTreeMap<String, usize> = BTreeMap::new();
    for card in &sim_state.cards {
        if let Some(name) = card
            .text_lines
            .iter()
            .map(|l| l.text.clone())
            .find(|t| t.starts_with("HOLDER"))
        {
            *physical.entry(name).or_default() += 1;
        }
    }
    for (i, t) in tokens.iter().enumerate() {
        let n = physical.get(&holder(i)).copied().unwrap_or(0);
        assert!(n <= 1, "{t} was produced on {n} cards");
        if finals[t] == "PRODUCED" {
            assert_eq!(n, 1, "{t} is PRODUCED but the printer made {n} cards");
        }
    }

    let caught = landings
        .iter()
        .filter(|l| l.events_in_flight + l.webhooks_in_flight > 0)
        .count();
    // Calls a kill cut before the stub answered them (it dropped them).
    let cut = control
        .received()
        .iter()
        .filter(|r| matches!(r.group, Some(Group::Events | Group::Webhook)) && r.status.is_none())
        .count();
    let produced = finals.values().filter(|s| *s == "PRODUCED").count();
    eprintln!(
        "kill run: {KILLS} kills ({caught} with deliveries in flight), {CARDS} cards \
         ({produced} produced, {} production errors); calls cut unanswered: {cut}; \
         re-deliveries: {cb_again} events, {wh_again} webhooks; {:.1} s",
        CARDS - produced,
        began.elapsed().as_secs_f64()
    );
    assert!(
        caught >= MIN_KILLS_IN_FLIGHT,
        "only {caught} of {KILLS} kills caught a delivery in flight: the run proved little"
    );
}
