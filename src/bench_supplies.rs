//! `satellite bench --supplies`: a kiosk's ordinary life on a schedule.
//! N cards (1,000 unless given) through the agent and the simulator at speed
//! 0 over a real pseudo-terminal, one after another, while the ribbon runs
//! out, the feeder empties, cleaning falls due and customers who walk away
//! fill the reject box. A technician (this harness) serves each supply when
//! the agent stops for it. Prints, from the simulator's own record of every
//! card: blank cards spent on refusals the agent could foresee (target 0),
//! each stop, and how many cards before it the agent's forecast warned.
//! Figures, not assertions.

use crate::config::Config;
use crate::daemon::Daemon;
use crate::engine::maintenance::Operation;
use crate::engine::Engine;
use crate::printer::Endpoint;
use crate::store::Keys;
use printer_sim::{Customer, SimConfig, Simulator};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The schedule: what each supply holds when full.
const RIBBON_CARDS: u32 = 250;
const FEEDER_CARDS: u32 = 180;
/// Cleaning is recommended after this many cards, required after twice it.
const CLEANING_INTERVAL: u32 = 150;
/// The box the profile describes (`reject_box_capacity`), as the
/// simulator builds it.
const REJECT_CAPACITY: u32 = 20;
/// One customer in this many walks away: the card is retracted into the
/// reject box (PRD_TIMEOUT), which is the box's ordinary way to fill.
const WALK_AWAY_EVERY: usize = 10;
/// The customer's time to take a card, in the agent's configuration.
const TAKE_MS: u64 = 150;
/// A kiosk's pace, to put the warning's lead in hours.
const NOMINAL_CARDS_PER_HOUR: f64 = 20.0;

/// One stop of production, and the warning that came before it.
struct Stop {
    supply: String,
    code: String,
    /// Cards finished when production stopped.
    at_card: usize,
    /// Cards finished when the forecast first warned of this supply.
    warned_at_card: Option<usize>,
    /// The forecast's hours left at that warning (at the measured rate).
    warned_hours: Option<f64>,
}

pub async fn run(cards: usize, json_out: bool) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    Keys::generate(&dir.path().join("card.key")).map_err(|e| e.to_string())?;
    let mut sc = SimConfig::for_model("evolis-km500b").map_err(|e| e.to_string())?;
    sc.speed = 0.0;
    sc.customer = Customer::TakeAfter(0);
    sc.cleaning_interval = CLEANING_INTERVAL;
    sc.ribbon_type = "kb".into();
    sc.ribbon_cards = RIBBON_CARDS;
    sc.reject_capacity = REJECT_CAPACITY;
    sc.feeders[0].card_type = "debit".into();
    sc.feeders[0].count = FEEDER_CARDS;
    for f in sc.feeders.iter_mut().skip(1) {
        f.card_type = "other".into();
        f.count = 0;
    }
    let sim = Simulator::new(sc);
    let link = sim
        .serve_pty(Some(&dir.path().join("printer")))
        .await
        .map_err(|e| e.to_string())?;
    let mut config = Config::local(dir.path(), "BENCH01");
    config.printer.timeouts.take = Some(TAKE_MS);
    let daemon = Daemon::start(config, Some(Endpoint::Serial(link))).await?;
    let engine = daemon.engine.clone();
    engine
        .set_inventory(1, "debit".into(), FEEDER_CARDS)
        .await
        .map_err(|e| e.to_string())?;

    // The installing technician empties the reject box and says so, once
    // the printer's reject counter has been read.
    let mut told = Err(String::new());
    for _ in 0..500 {
        told = engine.set_reject_box(0).await.map_err(|e| e.to_string());
        if told.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    told.map_err(|e| format!("the reject box could not be set as emptied: {e}"))?;

    let started = Instant::now();
    let mut stops: Vec<Stop> = Vec::new();
    // Per supply: the card count at its first warning since it was served.
    let mut warned: BTreeMap<String, (usize, Option<f64>)> = BTreeMap::new();
    let mut walked_away = 0usize;
    let mut finished = 0usize;
    for i in 0..cards {
        let walk_away = (i + 1) % WALK_AWAY_EVERY == 0;
        sim.set_customer(if walk_away {
            Customer::Never
        } else {
            Customer::TakeAfter(0)
        });
        let token = format!("life-{i}");
        let body = crate::bench::request(i, &token, "BENCH01");
        engine
            .submit(body.to_string().as_bytes())
            .await
            .map_err(|e| format!("card {i}: {e}"))?;
        loop {
            if started.elapsed() > Duration::from_secs(1200) {
                return Err(format!("only {finished} of {cards} cards after 20 minutes"));
            }
            let p = engine.production(&token).await.map_err(|e| e.to_string())?;
            match p.status {
                "PRODUCED" => break,
                "PRODUCTION_ERROR"
                    if walk_away && p.error_code.map(|c| c.as_str()) == Some("PRD_TIMEOUT") =>
                {
                    walked_away += 1;
                    break;
                }
                "PRODUCTION_ERROR" | "REQUEST_ERROR" => {
                    return Err(format!(
                        "card {i}: {} {:?} {:?}",
                        p.status, p.error_code, p.description
                    ))
                }
                _ => {}
            }
            let health = crate::engine::report::health(&engine).await;
            note_warnings(&health, finished, &mut warned);
            if health["state"] == "waiting_for_printer" {
                let code = health["engine"]["code"].as_str().unwrap_or("").to_string();
                let reason = health["engine"]["reason"].as_str().unwrap_or("");
                let supply = serve(&engine, &sim, &code, reason).await?;
                // The loop looks again within a second: wait for it, so
                // that one stop is served once.
                for _ in 0..500 {
                    let h = crate::engine::report::health(&engine).await;
                    if h["state"] != "waiting_for_printer" || h["engine"]["code"] != code.as_str() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                let first = warned.remove(&supply);
                stops.push(Stop {
                    supply,
                    code,
                    at_card: finished,
                    warned_at_card: first.map(|w| w.0),
                    warned_hours: first.and_then(|w| w.1),
                });
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        finished += 1;
        let health = crate::engine::report::health(&engine).await;
        note_warnings(&health, finished, &mut warned);
    }
    let elapsed = started.elapsed();
    daemon.stop().await;
    let state = sim.state();
    let c = state.counters;
    // Every blank card taken from the feeder either reached a customer or
    // was retracted after a customer walked away; any other is spent.
    let spent = c.inserted.saturating_sub(c.taken + walked_away as u64);
    let per_1000 = spent as f64 * 1000.0 / cards.max(1) as f64;
    if json_out {
        let stops: Vec<Value> = stops
            .iter()
            .map(|s| {
                json!({
                    "supply": s.supply, "code": s.code, "atCard": s.at_card,
                    "warnedAtCard": s.warned_at_card,
                    "leadCards": s.warned_at_card.map(|w| s.at_card - w),
                    "warnedHoursLeft": s.warned_hours,
                })
            })
            .collect();
        println!(
            "{:#}",
            json!({
                "cards": cards, "seconds": elapsed.as_secs_f64(),
                "inserted": c.inserted, "taken": c.taken, "walkedAway": walked_away,
                "rejected": c.rejected, "blankCardsSpent": spent, "spentPer1000": per_1000,
                "stops": stops,
            })
        );
        return Ok(());
    }
    println!(
        "satellite bench --supplies: {cards} cards at speed 0 over a pseudo-terminal; ribbon {RIBBON_CARDS} cards, feeder {FEEDER_CARDS}, cleaning required every {} cards, reject box {REJECT_CAPACITY}, one customer in {WALK_AWAY_EVERY} walks away",
        CLEANING_INTERVAL * 2
    );
    println!(
        "  cards        {} taken, {walked_away} retracted (walked away), {} inserted, {} rejected ({:.1} s)",
        c.taken,
        c.inserted,
        c.rejected,
        elapsed.as_secs_f64()
    );
    println!(
        "  blank cards spent on foreseeable refusals: {spent} ({per_1000:.1} per 1,000; target 0)"
    );
    println!("  stops        supply       code                 at card  warned at  lead (cards)  lead at {NOMINAL_CARDS_PER_HOUR} cards/h");
    for s in &stops {
        let lead = s.warned_at_card.map(|w| s.at_card - w);
        println!(
            "               {:<12} {:<20} {:>7}  {:>9}  {:>12}  {:>10}",
            s.supply,
            s.code,
            s.at_card,
            s.warned_at_card.map_or("-".into(), |w| w.to_string()),
            lead.map_or("none".into(), |l| l.to_string()),
            lead.map_or("-".into(), |l| format!(
                "{:.1} h",
                l as f64 / NOMINAL_CARDS_PER_HOUR
            )),
        );
    }
    Ok(())
}

/// Records the card count at which each supply first showed a warning in
/// the health document's forecast (since it was last served).
fn note_warnings(
    health: &Value,
    finished: usize,
    warned: &mut BTreeMap<String, (usize, Option<f64>)>,
) {
    let list = health["supplies"]["forecast"].as_array();
    for s in list.into_iter().flatten() {
        if s["warning"] != true {
            continue;
        }
        let name = match s["feeder"].as_u64() {
            Some(n) => format!("feeder {n}"),
            None => s["supply"].as_str().unwrap_or("?").to_string(),
        };
        warned
            .entry(name)
            .or_insert((finished, s["hoursLeft"].as_f64()));
    }
}

/// The technician's visit for the stop `code`: serves the supply and says
/// which it was.
async fn serve(
    engine: &Engine,
    sim: &Simulator,
    code: &str,
    reason: &str,
) -> Result<String, String> {
    match code {
        "PRT_SETUP_ERROR" if reason.contains("cleaning") => {
            engine
                .maintenance(Operation::Clean, Duration::from_secs(10))
                .await
                .map_err(|e| format!("cleaning: {e}"))?;
            Ok("cleaning".into())
        }
        "PRT_RIBBON_ENDED" | "PRT_RIBBON_MISSING" => {
            sim.load_ribbon("kb", RIBBON_CARDS)?;
            Ok("ribbon".into())
        }
        "PRD_FEEDER_EMPTY" => {
            sim.set_feeder(1, FEEDER_CARDS, None)?;
            engine
                .set_inventory(1, "debit".into(), FEEDER_CARDS)
                .await
                .map_err(|e| e.to_string())?;
            Ok("feeder 1".into())
        }
        "PRD_REJECT_FULL" => {
            sim.empty_box("reject")?;
            // And says so, as `satellite inventory reject-box --emptied` does.
            engine
                .set_reject_box(0)
                .await
                .map_err(|e| format!("reject box emptied: {e}"))?;
            Ok("reject_box".into())
        }
        other => Err(format!(
            "production stopped for an unplanned reason: {other} {reason}"
        )),
    }
}
