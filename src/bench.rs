//! `satellite bench`: N cards through the simulator at speed 0 over a real
//! pseudo-terminal, with the real store (`synchronous=FULL`), submitted through
//! the engine as the API does. Prints cards per second, CPU per card, p50/p99
//! of each step and the peak RSS. Figures, not assertions: machines are noisy.
//!
//! The simulator runs in the same process (it is the printer's firmware, not
//! part of the agent), so CPU and RSS include it: the agent alone uses less.

use crate::config::Config;
use crate::daemon::Daemon;
use crate::engine::plan::Step;
use crate::printer::Endpoint;
use crate::store::Keys;
use printer_sim::{Customer, SimConfig, Simulator};
use serde_json::json;
use std::time::{Duration, Instant};

pub async fn run(cards: usize, json_out: bool) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    Keys::generate(&dir.path().join("card.key")).map_err(|e| e.to_string())?;
    let printer = Printer::start(dir.path()).await?;
    let link = match &printer {
        Printer::Process { link, .. } | Printer::InProcess { link, .. } => link.clone(),
    };
    let mut config = Config::local(dir.path(), "BENCH01");
    config.production.queue_limit = cards.max(1);
    let daemon = Daemon::start(config, Some(Endpoint::Serial(link))).await?;
    let engine = daemon.engine.clone();
    engine
        .set_inventory(1, "debit".into(), u32::MAX / 4)
        .await
        .map_err(|e| e.to_string())?;

    let cpu0 = cpu_time();
    let started = Instant::now();
    let mut tokens = Vec::with_capacity(cards);
    for i in 0..cards {
        let token = format!("bench-{i}");
        let body = request(i, &token, "BENCH01");
        engine
            .submit(body.to_string().as_bytes())
            .await
            .map_err(|e| format!("card {i}: {e}"))?;
        tokens.push(token);
    }
    produced(&engine, &tokens, started).await?;
    let elapsed = started.elapsed();
    let cpu = cpu_time() - cpu0;
    // The peak of production, before the harness reads the simulator's
    // whole state (which is the harness's memory, not the agent's).
    let rss_kb = peak_rss_kb();
    daemon.stop().await;
    let taken = printer.taken().await?;
    if taken != cards as u64 {
        return Err(format!(
            "{cards} cards PRODUCED but the printer saw {taken} taken"
        ));
    }
    let alone = printer.separate();
    let timings = engine.step_timings();
    let per_step: Vec<(Step, f64, f64)> = Step::ALL
        .into_iter()
        .filter_map(|s| {
            let mut v = timings.get(&s)?.clone();
            v.sort();
            Some((s, pct(&v, 0.50), pct(&v, 0.99)))
        })
        .collect();
    let rate = cards as f64 / elapsed.as_secs_f64();
    let cpu_ms = cpu.as_secs_f64() * 1000.0 / cards as f64;
    if json_out {
        let steps: serde_json::Map<String, serde_json::Value> = per_step
            .iter()
            .map(|(s, p50, p99)| {
                (
                    s.name().to_string(),
                    json!({ "p50_ms": p50, "p99_ms": p99 }),
                )
            })
            .collect();
        println!(
            "{:#}",
            json!({ "cards": cards, "seconds": elapsed.as_secs_f64(), "cards_per_second": rate, "cpu_ms_per_card": cpu_ms, "peak_rss_kb": rss_kb, "simulator_in_process": !alone, "steps": steps })
        );
    } else {
        println!("satellite bench: {cards} cards, simulator at speed 0 over a pseudo-terminal, SQLite synchronous=FULL");
        println!(
            "  throughput   {rate:.1} cards/s ({:.2} s in all)",
            elapsed.as_secs_f64()
        );
        let whose = if alone {
            "the agent alone; the simulator is another process"
        } else {
            "agent and simulator in one process: printer-sim not found beside satellite"
        };
        println!("  CPU          {cpu_ms:.2} ms per card ({whose})");
        println!("  peak RSS     {:.1} MB ({whose})", rss_kb as f64 / 1024.0);
        println!("  step         p50 ms    p99 ms");
        for (s, p50, p99) in &per_step {
            println!("  {:<12} {p50:>7.3}   {p99:>7.3}", s.name());
        }
    }
    Ok(())
}

/// The simulated printer: the `printer-sim` binary beside this one when there
/// is one (so the figures are the agent's alone), else in this process.
/// `bench --idle` uses it too.
pub(crate) enum Printer {
    Process {
        /// Killed when dropped.
        _child: Box<tokio::process::Child>,
        control: std::path::PathBuf,
        link: std::path::PathBuf,
    },
    InProcess {
        sim: Simulator,
        link: std::path::PathBuf,
    },
}

impl Printer {
    pub(crate) async fn start(dir: &std::path::Path) -> Result<Printer, String> {
        let link = dir.join("printer");
        let control = dir.join("printer.ctl");
        let beside = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("printer-sim")))
            .filter(|p| p.is_file());
        if let Some(bin) = beside {
            let log = dir.join("printer-sim.log");
            let stderr = std::fs::File::create(&log).map_err(|e| e.to_string())?;
            let mut child = tokio::process::Command::new(&bin)
                .args([
                    "--pty",
                    "--speed",
                    "0",
                    "--customer",
                    "take:0",
                    "--feeders",
                    "blank:1000000000,blank:1000000000",
                    "--cleaning-interval",
                    "4000000000",
                ])
                .arg("--link")
                .arg(&link)
                .arg("--control")
                .arg(&control)
                .stdout(std::process::Stdio::null())
                .stderr(stderr)
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| format!("{}: {e}", bin.display()))?;
            for _ in 0..500 {
                if link.exists() && control.exists() {
                    return Ok(Printer::Process {
                        _child: Box::new(child),
                        control,
                        link,
                    });
                }
                if let Ok(Some(status)) = child.try_wait() {
                    let why = std::fs::read_to_string(&log).unwrap_or_default();
                    eprintln!("satellite bench: {} exited ({status}): {}; running the simulator in this process instead", bin.display(), why.trim());
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let mut sc = SimConfig::for_model("evolis-km500b").map_err(|e| e.to_string())?;
        sc.speed = 0.0;
        sc.customer = Customer::TakeAfter(0);
        sc.cleaning_interval = u32::MAX;
        for f in &mut sc.feeders {
            f.count = u32::MAX / 4;
        }
        let sim = Simulator::new(sc);
        let link = sim
            .serve_pty(Some(&link))
            .await
            .map_err(|e| e.to_string())?;
        Ok(Printer::InProcess { sim, link })
    }

    /// The pseudo-terminal the agent opens (a symlink to it).
    pub(crate) fn link(&self) -> &std::path::Path {
        match self {
            Printer::Process { link, .. } | Printer::InProcess { link, .. } => link,
        }
    }

    /// One request to the simulator's control socket (or its in-process
    /// handler): what `printer-sim ctl` sends.
    pub(crate) async fn control(
        &self,
        req: printer_sim::control::Request,
    ) -> Result<serde_json::Value, String> {
        let what = format!("{req:?}");
        let answer = match self {
            Printer::InProcess { sim, .. } => printer_sim::control::handle(sim, req),
            Printer::Process { control, .. } => printer_sim::control::request(control, &req)
                .await
                .map_err(|e| format!("{}: {e}", control.display()))?,
        };
        if answer.get("ok").and_then(|v| v.as_bool()) != Some(true) {
            return Err(format!("the simulator refused {what}: {answer}"));
        }
        Ok(answer)
    }

    pub(crate) fn separate(&self) -> bool {
        matches!(self, Printer::Process { .. })
    }

    /// Cards the customer took, by the simulator's own count.
    async fn taken(&self) -> Result<u64, String> {
        match self {
            Printer::InProcess { sim, .. } => Ok(sim.state().counters.taken),
            Printer::Process { control, .. } => {
                let out = tokio::process::Command::new(
                    std::env::current_exe()
                        .map_err(|e| e.to_string())?
                        .with_file_name("printer-sim"),
                )
                .args(["ctl", "--control"])
                .arg(control)
                .args(["state", "--json"])
                .output()
                .await
                .map_err(|e| e.to_string())?;
                let v: serde_json::Value = serde_json::from_slice(&out.stdout)
                    .map_err(|e| format!("printer-sim state: {e}"))?;
                v["counters"]["taken"]
                    .as_u64()
                    .ok_or_else(|| "printer-sim state has no taken counter".to_string())
            }
        }
    }
}

fn pct(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// The benchmarks' request number `i` for `kiosk`: a magnetic `debit`
/// card with the holder's name printed, both tracks.
pub(crate) fn request(i: usize, token: &str, kiosk: &str) -> serde_json::Value {
    let pan = pan(i);
    json!({
        "cardToken": token, "profileId": 1, "kioskId": kiosk, "cardType": "debit",
        "issuerRequestId": format!("r{i}"), "cardId": format!("c{i}"), "pan": pan, "expiry": "2812",
        "cardholderName": "BENCH HOLDER",
        "printedLines": [{ "text": "BENCH HOLDER", "slot": "name" }],
        "tracks": { "track1": format!("B{pan}^HOLDER/BENCH^2812101"), "track2": format!("{pan}=2812101") }
    })
}

/// A test-range PAN with a valid Luhn digit: 4000 00 + 9 digits of `i` + check.
pub(crate) fn pan(i: usize) -> String {
    crate::request::with_luhn_digit(&format!("400000{:09}", i % 1_000_000_000)).expect("digits")
}

fn cpu_time() -> Duration {
    use nix::sys::resource::{getrusage, UsageWho};
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(u) => {
            let t = |tv: nix::sys::time::TimeVal| {
                Duration::new(tv.tv_sec() as u64, tv.tv_usec() as u32 * 1000)
            };
            t(u.user_time()) + t(u.system_time())
        }
        Err(_) => Duration::ZERO,
    }
}

fn peak_rss_kb() -> u64 {
    // VmHWM: the resident set's high-water mark.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Until each of `tokens` is PRODUCED (they finish in order).
pub(crate) async fn produced(
    engine: &crate::engine::Engine,
    tokens: &[String],
    started: Instant,
) -> Result<(), String> {
    let mut next = 0;
    while next < tokens.len() {
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
            return Err(format!(
                "only {next} of {} cards after 10 minutes",
                tokens.len()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn bench_pans_pass_luhn() {
        for i in [0, 1, 7, 123_456, 999_999_999] {
            assert!(crate::request::luhn_ok(&super::pan(i)), "{}", super::pan(i));
        }
    }
}
