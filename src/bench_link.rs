//! `satellite bench --link`: how the agent lives through link trouble, with
//! the daemon and the simulator over a real pseudo-terminal.
//!
//! * Recovery time: outages from 0.3 s to `max_outage` (log-spaced), the link
//!   dropped (`unreachable`) or the printer silent on an open line
//!   (`silent`), alternately while idle and while a card is in production.
//!   Measured from the moment the simulator answers again to the moment the
//!   agent's published view says the printer is ready and no card is in
//!   doubt.
//! * Submission latency: `POST /v1/cards` over the Unix socket while every
//!   printer answer takes 300 ms and cards are being produced.
//!
//! Figures, not assertions: machines are noisy.

use crate::api::client::Client;
use crate::config::Config;
use crate::daemon::Daemon;
use crate::engine::state::Activity;
use crate::printer::Endpoint;
use crate::store::Keys;
use printer_sim::{Condition, Customer, SimConfig, Simulator};
use serde_json::json;
use std::time::{Duration, Instant};

pub async fn run(outages: usize, max_outage: Duration, json_out: bool) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    Keys::generate(&dir.path().join("card.key")).map_err(|e| e.to_string())?;
    let mut c = SimConfig::for_model("evolis-km500b").map_err(|e| e.to_string())?;
    c.speed = 0.0;
    c.customer = Customer::TakeAfter(50);
    let sim = Simulator::new(c);
    let link = sim
        .serve_pty(Some(&dir.path().join("printer")))
        .await
        .map_err(|e| e.to_string())?;
    let mut config = Config::local(dir.path(), "BENCH01");
    config.production.queue_limit = 10_000;
    config.printer.timeouts.command = Some(1000);
    let daemon = Daemon::start(config, Some(Endpoint::Serial(link))).await?;
    let engine = daemon.engine.clone();
    engine
        .set_inventory(1, "debit".into(), u32::MAX / 4)
        .await
        .map_err(|e| e.to_string())?;
    let client = Client::new(&dir.path().join("api.sock"));
    let mut n = 0usize;
    let mut submit = |client: &Client| {
        n += 1;
        let (i, client) = (n, client.clone());
        async move {
            let pan = pan(i);
            let body = json!({
                "cardToken": format!("link-{i}"), "profileId": 1, "kioskId": "BENCH01", "cardType": "debit",
                "issuerRequestId": format!("r{i}"), "cardId": format!("c{i}"), "pan": pan, "expiry": "2812",
                "cardholderName": "BENCH HOLDER",
                "printedLines": [{ "text": "BENCH HOLDER", "slot": "name" }],
                "tracks": { "track1": format!("B{pan}^HOLDER/BENCH^2812101"), "track2": format!("{pan}=2812101") }
            });
            let t = Instant::now();
            let a = client.post("/v1/cards", body.to_string().as_bytes()).await;
            (t.elapsed(), a)
        }
    };
    wait_ready(&engine, Instant::now(), Duration::from_secs(10)).await?;
    // When the agent last found a card in doubt: an outage that swallows a
    // command in flight is only known when that command's time-out runs out.
    let doubt_at = std::sync::Arc::new(std::sync::Mutex::new(None::<Instant>));
    {
        let (mut rx, doubt_at) = (engine.state(), doubt_at.clone());
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                if matches!(rx.borrow().activity, Activity::CardInDoubt { .. }) {
                    *doubt_at.lock().expect("lock") = Some(Instant::now());
                }
            }
        });
    }

    // Recovery after outages.
    let ratio = (max_outage.as_secs_f64() / 0.3).powf(1.0 / (outages.max(2) - 1) as f64);
    let mut rows: Vec<Outage> = Vec::new();
    for k in 0..outages {
        let outage = Duration::from_secs_f64(0.3 * ratio.powi(k as i32));
        let kind = if k % 2 == 0 { "unreachable" } else { "silent" };
        let producing = (k / 2) % 2 == 1;
        if producing {
            let (_, a) = submit(&client).await;
            a.map_err(|e| e.to_string())?;
            let until = Instant::now() + Duration::from_secs(10);
            while !matches!(engine.state().borrow().activity, Activity::Producing { .. }) {
                if Instant::now() > until {
                    return Err("the card did not start".into());
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        let condition: Condition = format!("{kind}:{}", 24 * 3600 * 1000)
            .parse()
            .map_err(|e: String| e)?;
        let raised = Instant::now();
        sim.raise(condition);
        tokio::time::sleep(outage).await;
        sim.clear(Some(kind));
        let back = Instant::now();
        wait_ready(&engine, back, Duration::from_secs(120)).await?;
        let took = back.elapsed();
        // Measured from the return, or from when the agent could know (the
        // in-flight command's time-out), whichever is later.
        let known = doubt_at
            .lock()
            .expect("lock")
            .filter(|t| *t > raised)
            .map_or(back, |t| t.max(back));
        let after_known = known.elapsed();
        rows.push((kind, producing, outage, took, after_known));
        if !json_out {
            println!(
                "outage {:>2}: {kind:<11} {:<10} {:>6.1} s -> back in service {:>5} ms after the return, {:>5} ms after the agent could know",
                k + 1,
                if producing { "production" } else { "idle" },
                outage.as_secs_f64(),
                took.as_millis(),
                after_known.as_millis()
            );
        }
    }
    let sorted = |f: &dyn Fn(&Outage) -> Option<Duration>| {
        let mut v: Vec<Duration> = rows.iter().filter_map(f).collect();
        v.sort();
        v
    };
    let rec = sorted(&|r| Some(r.3));
    let idle = sorted(&|r| (!r.1).then_some(r.3));
    let busy = sorted(&|r| r.1.then_some(r.3));
    let known = sorted(&|r| Some(r.4));

    // Submission latency while the printer is slow.
    sim.raise("slow:300".parse().map_err(|e: String| e)?);
    let mut lat = Vec::new();
    let mut during_card = 0;
    for _ in 0..200 {
        if matches!(engine.state().borrow().activity, Activity::Producing { .. }) {
            during_card += 1;
        }
        let (t, a) = submit(&client).await;
        let a = a.map_err(|e| e.to_string())?;
        if a.status != 201 {
            return Err(format!("submission answered {}: {}", a.status, a.body));
        }
        lat.push(t);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sim.clear(None);
    lat.sort();
    daemon.stop().await;

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let pct = |v: &[Duration], p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    if json_out {
        println!(
            "{}",
            json!({
                "outages": rows.len(),
                "recovery_ms": stats(&rec),
                "recovery_idle_ms": stats(&idle),
                "recovery_in_production_ms": stats(&busy),
                "recovery_after_known_ms": stats(&known),
                "submit_while_slow_ms": { "n": lat.len(), "during_card": during_card, "p50": ms(pct(&lat, 0.5)), "p99": ms(pct(&lat, 0.99)), "max": ms(lat[lat.len() - 1]) },
            })
        );
    } else {
        let line = |v: &[Duration]| {
            format!(
                "min {:.0} ms, median {:.0} ms, max {:.0} ms ({} outages)",
                ms(v[0]),
                ms(pct(v, 0.5)),
                ms(v[v.len() - 1]),
                v.len()
            )
        };
        println!(
            "back in service after the link returns, outages of 0.3 to {:.0} s (link dropped, printer silent):",
            max_outage.as_secs_f64()
        );
        println!("  all:                                   {}", line(&rec));
        println!("  idle:                                  {}", line(&idle));
        println!("  in production, from the return:       {}", line(&busy));
        println!("  from when the agent could know:        {}", line(&known));
        println!(
            "POST /v1/cards while every printer answer takes 300 ms ({} requests, {during_card} of them while a card was in production): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            lat.len(),
            ms(pct(&lat, 0.5)),
            ms(pct(&lat, 0.99)),
            ms(lat[lat.len() - 1])
        );
    }
    Ok(())
}

fn stats(v: &[Duration]) -> serde_json::Value {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    json!({
        "n": v.len(),
        "min": v.first().map(|d| ms(*d)),
        "median": v.get(v.len() / 2).map(|d| ms(*d)),
        "max": v.last().map(|d| ms(*d)),
    })
}

/// One outage: its kind, whether a card was in production, its length, and
/// the time back in service after the return and after the agent could know.
type Outage = (&'static str, bool, Duration, Duration, Duration);

/// Until a reading taken after `since` says ready and no card is in doubt.
async fn wait_ready(
    engine: &crate::engine::Engine,
    since: Instant,
    limit: Duration,
) -> Result<(), String> {
    let until = Instant::now() + limit;
    loop {
        let fresh = {
            let v = engine.printer().view().borrow().clone();
            v.age().is_some_and(|a| a < since.elapsed()) && v.not_ready().is_none()
        };
        let ready = fresh && engine.state().borrow().blocks_production().is_none();
        if ready {
            return Ok(());
        }
        if Instant::now() > until {
            return Err(format!(
                "not back in service after {} s: {:?}",
                limit.as_secs(),
                engine.printer().view().borrow().not_ready()
            ));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// A valid test-range PAN per card.
fn pan(i: usize) -> String {
    crate::bench::pan(i)
}
