//! `satellite bench --upstream`: how fast status changes reach the upstream,
//! against the reference central base (`printer_sim::upstream::Stub`) in this
//! process on loopback, plain HTTP.
//!
//! * Latency: N cards through the engine on the simulator at speed 0 (as
//!   `satellite bench`), with the central base's events sink and one issuer
//!   webhook. For every status change, the stub's receipt time minus the
//!   event's `occurredAt` (written when the change is committed); for each
//!   PRODUCED, also from the printer's own record of the card being taken
//!   (the simulator's card log) to the stub's receipt.
//! * Drain: with the stub down, M status changes queued through the store
//!   (accept, start, finish: three a card) while the real relays run and
//!   fail; then the stub comes back and the time until it has received them
//!   all is taken from its own receipt times, per sink.
//!
//! Figures, not assertions: machines are noisy. The simulator runs in this
//! process (its card log's clock is needed), as does the stub.

use crate::config::Config;
use crate::daemon::Daemon;
use crate::printer::Endpoint;
use crate::store::{JobMeta, Keys, NewJob, Status, Store};
use crate::upstream::central::CentralBase;
use crate::upstream::sink::Sink;
use crate::upstream::{Health, UpstreamConfig};
use printer_sim::upstream::{Fault, Group, Stub, StubConfig, StubHandle};
use printer_sim::{Customer, SimConfig, Simulator};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio_util::sync::CancellationToken;

const KIOSK: &str = "BENCH01";
const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const WEBHOOK: &str = "issuer";
/// The receiver-side target for p99 on loopback, and for the drain.
const TARGET_P99_MS: f64 = 25.0;
const TARGET_DRAIN_S_PER_10K: f64 = 5.0;

pub async fn run(cards: usize, events: usize, json_out: bool) -> Result<(), String> {
    let latency = latency(cards.max(1), json_out).await?;
    let drain = drain(events.max(1), json_out).await?;
    if json_out {
        println!(
            "{:#}",
            json!({
                "latency": latency,
                "drain": drain,
                "targets": { "p99_ms": TARGET_P99_MS, "drain_s_per_10000": TARGET_DRAIN_S_PER_10K },
            })
        );
    }
    Ok(())
}

/// Latency of N cards' status changes, per sink.
async fn latency(cards: usize, json_out: bool) -> Result<Value, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    Keys::generate(&dir.path().join("card.key")).map_err(|e| e.to_string())?;
    let stub = stub().await?;

    let mut sc = SimConfig::for_model("evolis-km500b").map_err(|e| e.to_string())?;
    sc.speed = 0.0;
    sc.customer = Customer::TakeAfter(0);
    sc.cleaning_interval = u32::MAX;
    for f in &mut sc.feeders {
        f.count = u32::MAX / 4;
    }
    // The simulator's card log counts ms from its own start (an Instant
    // taken in `new`): bracket it with the wall clock.
    let before = SystemTime::now();
    let sim = Simulator::new(sc);
    let after = SystemTime::now();
    let bracket = after.duration_since(before).unwrap_or_default();
    let sim_epoch = before + bracket / 2;
    let link = sim
        .serve_pty(Some(&dir.path().join("printer")))
        .await
        .map_err(|e| e.to_string())?;

    let mut config = Config::local(dir.path(), KIOSK);
    config.production.queue_limit = cards;
    config.upstream = upstream_config(dir.path(), &stub, 1000)?;
    let daemon = Daemon::start(config, Some(Endpoint::Serial(link))).await?;
    let engine = daemon.engine.clone();
    engine
        .set_inventory(1, "debit".into(), u32::MAX / 4)
        .await
        .map_err(|e| e.to_string())?;

    let started = Instant::now();
    let mut tokens = Vec::with_capacity(cards);
    for i in 0..cards {
        let token = format!("bench-{i}");
        let body = crate::bench::request(i, &token, KIOSK);
        engine
            .submit(body.to_string().as_bytes())
            .await
            .map_err(|e| format!("card {i}: {e}"))?;
        tokens.push(token);
    }
    let mut next = 0;
    while next < cards {
        let p = engine
            .production(&tokens[next])
            .await
            .map_err(|e| e.to_string())?;
        match p.status {
            "PRODUCED" => next += 1,
            "PRODUCTION_ERROR" | "REQUEST_ERROR" => {
                return Err(format!(
                    "{}: {:?} {:?}",
                    tokens[next], p.error_code, p.description
                ))
            }
            _ => tokio::time::sleep(Duration::from_millis(5)).await,
        }
        if started.elapsed() > Duration::from_secs(600) {
            return Err(format!("only {next} of {cards} cards after 10 minutes"));
        }
    }
    let produced_in = started.elapsed();
    // Three status changes a card (READY, IN_PROGRESS, PRODUCED), each to
    // both sinks.
    let expected = cards * 3;
    let store = engine.store();
    wait_delivered(&store, Duration::from_secs(60)).await?;
    daemon.stop().await;
    let control = stub.control();

    let cb: Vec<Arrival> = first_receipts(control.events().into_iter().map(|e| {
        let p = &e.envelope["production"];
        arrival(p, e.at, e.duplicate)
    }))?;
    let wh: Vec<Arrival> = first_receipts(control.webhooks().into_iter().map(|w| {
        let body: Value = serde_json::from_str(&w.body).unwrap_or(Value::Null);
        arrival(&body["data"], w.at, w.duplicate)
    }))?;
    for (name, got) in [("central base", &cb), ("webhook", &wh)] {
        if got.len() != expected {
            return Err(format!(
                "the {name} received {} distinct status changes of {expected}",
                got.len()
            ));
        }
    }

    // The printer's record of each card being taken: cards leave in order.
    let state = sim.state();
    let taken: Vec<SystemTime> = state
        .cards
        .iter()
        .filter(|c| !c.test_card)
        .filter_map(|c| {
            c.events
                .iter()
                .rev()
                .find(|e| e.what == "taken by the customer")
                .map(|e| sim_epoch + Duration::from_millis(e.t_ms))
        })
        .collect();
    if taken.len() != cards {
        return Err(format!(
            "the simulator logged {} cards taken for {cards} PRODUCED",
            taken.len()
        ));
    }
    let index: HashMap<&str, usize> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), i))
        .collect();
    let from_printer = |got: &[Arrival]| -> Vec<f64> {
        got.iter()
            .filter(|a| a.status == "PRODUCED")
            .filter_map(|a| {
                let t = taken[*index.get(a.card.as_str())?];
                Some(signed_ms(a.received, t))
            })
            .collect()
    };

    let mut sinks = serde_json::Map::new();
    let mut lines = Vec::new();
    for (name, got) in [("central_base", &cb), ("webhook", &wh)] {
        let all: Vec<f64> = got.iter().map(|a| a.latency_ms).collect();
        let per_status: Vec<(&str, Value)> = ["READY", "IN_PROGRESS", "PRODUCED"]
            .into_iter()
            .map(|s| {
                let v: Vec<f64> = got
                    .iter()
                    .filter(|a| a.status == s)
                    .map(|a| a.latency_ms)
                    .collect();
                (s, summary(&v))
            })
            .collect();
        let printer = from_printer(got);
        let duplicates = got.iter().filter(|a| a.duplicates > 0).count();
        lines.push((name, summary(&all), per_status.clone(), summary(&printer)));
        sinks.insert(
            name.into(),
            json!({
                "status_changes": got.len(),
                "redelivered": duplicates,
                "commit_to_stub_ms": summary(&all),
                "by_status_ms": per_status.iter().map(|(s, v)| (s.to_string(), v.clone())).collect::<serde_json::Map<_, _>>(),
                "printer_taken_to_stub_ms": summary(&printer),
            }),
        );
    }
    let out = json!({
        "cards": cards,
        "status_changes_per_sink": expected,
        "cards_per_second": cards as f64 / produced_in.as_secs_f64(),
        "sinks": sinks,
        "simulator_clock_bracket_ms": bracket.as_secs_f64() * 1000.0,
    });
    if !json_out {
        println!("satellite bench --upstream: latency, {cards} cards through the engine (simulator at speed 0, in process), reference central base on loopback (plain HTTP, in process)");
        println!(
            "  {} status changes per sink, produced at {:.1} cards/s",
            expected,
            cards as f64 / produced_in.as_secs_f64()
        );
        println!("  commit (occurredAt) -> stub receipt, ms        p50      p99      max");
        for (name, all, per, printer) in &lines {
            println!("  {:<44} {}", name, row(all));
            for (s, v) in per {
                println!("    {:<42} {}", s, row(v));
            }
            println!(
                "    {:<42} {}",
                "printer: card taken -> stub (PRODUCED)",
                row(printer)
            );
        }
        println!("  target: p99 <= {TARGET_P99_MS} ms; occurredAt has ms precision (latencies read up to 1 ms high), the simulator's log ms too (+-1 ms, clock bracket {:.3} ms)", bracket.as_secs_f64() * 1000.0);
    }
    Ok(out)
}

/// Time for the relays to deliver M queued status changes once the stub is
/// back.
async fn drain(events: usize, json_out: bool) -> Result<Value, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let keys = Keys::generate(&dir.path().join("card.key")).map_err(|e| e.to_string())?;
    let store =
        Arc::new(Store::open(&dir.path().join("satellite.db"), keys).map_err(|e| e.to_string())?);
    let stub = stub().await?;
    let control = stub.control();
    control.set_fault(Group::All, Fault::Down, None).await;

    // The relays, as the daemon runs them (the retry wait capped at 1 s).
    let cfg = upstream_config(dir.path(), &stub, 1000)?;
    let health = Health::default();
    let cb_cfg = cfg
        .central_base
        .as_ref()
        .ok_or("no central base configured")?;
    let cb = CentralBase::new(cb_cfg, KIOSK, &health)?;
    let sinks = Sink::all(&cfg, KIOSK, Some((&cb.http, &cb.tokens)), &health)?;
    let specs: Vec<_> = sinks.iter().map(Sink::spec).collect();
    store.configure_sinks(&specs).map_err(|e| e.to_string())?;
    let stop = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    for sink in sinks {
        let limits = cfg.limits(sink.batch, sink.batched());
        tasks.spawn(crate::upstream::relay::run(
            sink,
            store.clone(),
            limits,
            crate::metrics::Metrics::default(),
            stop.clone(),
        ));
    }

    // Queue: accept, start, finish, one transaction each, as the engine
    // writes them.
    let queued = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || queue(&store, events))
            .await
            .map_err(|e| e.to_string())??
    };
    let pending = store.outbox_depths().map_err(|e| e.to_string())?;
    for d in &pending {
        if d.pending != events as u64 {
            return Err(format!(
                "{} has {} pending of {events} queued",
                d.sink, d.pending
            ));
        }
    }

    control.clear_faults(None).await;
    let up = SystemTime::now();
    let up_i = Instant::now();
    wait_delivered(&store, Duration::from_secs(600)).await?;
    let noticed = up_i.elapsed();
    stop.cancel();
    while tasks.join_next().await.is_some() {}

    let mut out = serde_json::Map::new();
    let mut lines = Vec::new();
    let receipts: [(&str, Vec<Receipt>); 2] = [
        (
            "central_base",
            control
                .events()
                .into_iter()
                .map(|e| {
                    let id = e.envelope["production"]["eventId"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    (id, e.at, e.duplicate)
                })
                .collect(),
        ),
        (
            "webhook",
            control
                .webhooks()
                .into_iter()
                .map(|w| (w.webhook_id, w.at, w.duplicate))
                .collect(),
        ),
    ];
    for (name, got) in receipts {
        let distinct: HashSet<&str> = got.iter().map(|(id, _, _)| id.as_str()).collect();
        if distinct.len() != events {
            return Err(format!(
                "the {name} received {} distinct status changes of {events}",
                distinct.len()
            ));
        }
        let first = got.iter().map(|g| g.1).min().ok_or("nothing received")?;
        let last = got.iter().map(|g| g.1).max().ok_or("nothing received")?;
        let from_up = last.duration_since(up).unwrap_or_default().as_secs_f64();
        let waited = first.duration_since(up).unwrap_or_default().as_secs_f64();
        let drain = last.duration_since(first).unwrap_or_default().as_secs_f64();
        let duplicates = got.iter().filter(|g| g.2).count();
        lines.push((name, from_up, waited, drain, duplicates));
        out.insert(
            name.into(),
            json!({
                "seconds_from_up": from_up,
                "seconds_to_first": waited,
                "seconds_first_to_last": drain,
                "events_per_second": events as f64 / from_up.max(1e-9),
                "events_per_second_first_to_last": events as f64 / drain.max(1e-9),
                "redelivered": duplicates,
            }),
        );
    }
    let result = json!({
        "status_changes": events,
        "queued_in_seconds": queued.as_secs_f64(),
        "sinks": out,
        "agent_saw_all_delivered_after_s": noticed.as_secs_f64(),
    });
    if !json_out {
        println!("satellite bench --upstream: drain, {events} status changes queued with the stub down ({:.2} s to queue, {} cards), then the stub back", queued.as_secs_f64(), events.div_ceil(3));
        println!("  sink            from up    retry wait   first->last   events/s (from up)   redelivered");
        for (name, from_up, waited, drain, dup) in &lines {
            println!(
                "  {:<14} {:>7.2} s   {:>8.2} s   {:>9.2} s   {:>18.0}   {:>11}",
                name,
                from_up,
                waited,
                drain,
                events as f64 / from_up.max(1e-9),
                dup
            );
        }
        println!(
            "  target: <= {TARGET_DRAIN_S_PER_10K} s for 10000 (\"retry wait\": the relay's back-off since its last failure, at most 1 s here)"
        );
    }
    Ok(result)
}

/// Writes `events` status changes: READY, IN_PROGRESS, PRODUCED per card.
fn queue(store: &Store, events: usize) -> Result<Duration, String> {
    let t = Instant::now();
    let mut left = events;
    let mut i = 0usize;
    while left > 0 {
        let pan = crate::bench::pan(i);
        let token = format!("drain-{i}");
        let job = NewJob::from(JobMeta {
            card_token: token.clone(),
            profile_id: 1,
            kiosk_id: KIOSK.into(),
            card_type: "debit".into(),
            issuer_request_id: format!("r{i}"),
            card_id: format!("c{i}"),
            pan_masked: dialect::redact::mask_digits(&pan),
        });
        let data = format!("{{\"pan\":\"{pan}\",\"track2\":\"{pan}=2812101\"}}");
        store
            .accept(&job, &pan, data.as_bytes(), usize::MAX)
            .map_err(|e| format!("{token}: {e}"))?;
        left -= 1;
        if left > 0 {
            store.start(&token).map_err(|e| format!("{token}: {e}"))?;
            left -= 1;
        }
        if left > 0 {
            store
                .finish(&token, Status::Produced, None, None)
                .map_err(|e| format!("{token}: {e}"))?;
            left -= 1;
        }
        i += 1;
    }
    Ok(t.elapsed())
}

/// Until no sink has anything pending (every delivery answered 2xx).
async fn wait_delivered(store: &Arc<Store>, limit: Duration) -> Result<(), String> {
    let until = Instant::now() + limit;
    loop {
        let s = store.clone();
        let depths = tokio::task::spawn_blocking(move || s.outbox_depths())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        if depths.iter().all(|d| d.pending == 0) {
            if let Some(d) = depths.iter().find(|d| d.dead > 0) {
                return Err(format!("{}: {} dead letters", d.sink, d.dead));
            }
            return Ok(());
        }
        if Instant::now() > until {
            return Err(format!(
                "still pending after {} s: {:?}",
                limit.as_secs(),
                depths
                    .iter()
                    .map(|d| (&d.sink, d.pending, &d.last_error))
                    .collect::<Vec<_>>()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A receipt: the event's id, when, and whether a repeat.
type Receipt = (String, SystemTime, bool);

/// One status change as a receiver first got it.
struct Arrival {
    event_id: String,
    card: String,
    status: String,
    received: SystemTime,
    latency_ms: f64,
    duplicates: usize,
}

fn arrival(p: &Value, at: SystemTime, duplicate: bool) -> Result<Arrival, String> {
    let s = |k: &str| {
        p[k].as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("a received status change has no {k}: {p}"))
    };
    let occurred =
        humantime::parse_rfc3339(&s("occurredAt")?).map_err(|e| format!("occurredAt: {e}"))?;
    Ok(Arrival {
        event_id: s("eventId")?,
        card: s("cardToken")?,
        status: s("status")?,
        received: at,
        latency_ms: signed_ms(at, occurred),
        duplicates: usize::from(duplicate),
    })
}

/// The first receipt of each event id, in arrival order; later receipts
/// counted on it.
fn first_receipts(
    all: impl Iterator<Item = Result<Arrival, String>>,
) -> Result<Vec<Arrival>, String> {
    let mut out: Vec<Arrival> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    for a in all {
        let a = a?;
        match at.get(&a.event_id) {
            Some(&i) => out[i].duplicates += 1,
            None => {
                at.insert(a.event_id.clone(), out.len());
                out.push(Arrival { duplicates: 0, ..a });
            }
        }
    }
    Ok(out)
}

/// `a - b` in ms, negative when `a` is earlier.
fn signed_ms(a: SystemTime, b: SystemTime) -> f64 {
    match a.duration_since(b) {
        Ok(d) => d.as_secs_f64() * 1000.0,
        Err(e) => -e.duration().as_secs_f64() * 1000.0,
    }
}

fn summary(v: &[f64]) -> Value {
    if v.is_empty() {
        return json!({ "n": 0 });
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let pct = |q: f64| s[((s.len() - 1) as f64 * q).round() as usize];
    json!({ "n": s.len(), "p50": pct(0.5), "p99": pct(0.99), "max": s[s.len() - 1] })
}

fn row(v: &Value) -> String {
    let f = |k: &str| v[k].as_f64().map_or("-".into(), |x| format!("{x:>8.2}"));
    format!("{} {} {}   (n={})", f("p50"), f("p99"), f("max"), v["n"])
}

async fn stub() -> Result<StubHandle, String> {
    Stub::start(StubConfig {
        kiosk_id: KIOSK.into(),
        webhook_secrets: vec![WEBHOOK_SECRET.into()],
        ..StubConfig::default()
    })
    .await
    .map_err(|e| format!("the reference central base: {e}"))
}

fn secret(dir: &Path, name: &str, text: &str) -> Result<std::path::PathBuf, String> {
    let p = dir.join(name);
    std::fs::write(&p, text).map_err(|e| e.to_string())?;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| e.to_string())?;
    Ok(p)
}

/// `[upstream]`: the central base's events sink (no intake) and one
/// webhook, both on `stub`; otherwise the defaults but the back-off cap.
fn upstream_config(
    dir: &Path,
    stub: &StubHandle,
    backoff_cap_ms: u64,
) -> Result<UpstreamConfig, String> {
    let cb_secret = secret(dir, "cb.secret", "stub-secret\n")?;
    let wh_secret = secret(dir, "webhook.secret", &format!("{WEBHOOK_SECRET}\n"))?;
    let text = format!(
        r#"
        backoff_first_ms = 100
        backoff_cap_ms = {backoff_cap_ms}
        [central_base]
        url = "{base}"
        intake = false
        events = true
        [central_base.auth]
        token_url = "{token}"
        client_id = "satellite"
        client_secret_file = "{cb_secret}"
        [[webhook]]
        name = "{WEBHOOK}"
        url = "{webhook}"
        secret_file = "{wh_secret}"
        "#,
        base = stub.base_url(),
        token = stub.token_url(),
        webhook = stub.webhook_url(),
        cb_secret = cb_secret.display(),
        wh_secret = wh_secret.display(),
    );
    let c: UpstreamConfig = toml::from_str(&text).map_err(|e| e.to_string())?;
    c.check()?;
    Ok(c)
}
