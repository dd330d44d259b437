//! `printer-sim`: run the simulated printer, drive a running one (`ctl`), or
//! play back a transcript (`replay`).
//!
//! Scripts read the links from stdout, one per line (`pty /dev/pts/5`,
//! `tcp 127.0.0.1:40000`, `control /tmp/sim.sock`); logs go to stderr.

use clap::{Args, Parser, Subcommand, ValueEnum};
use printer_sim::config::{parse_feeders, Customer, SimConfig};
use printer_sim::control::{self, Request};
use printer_sim::link::pty::{point_link, Pty};
use printer_sim::replay::{ReplayOptions, Replayer};
use printer_sim::scenario::Scenario;
use printer_sim::transcript::Transcript;
use printer_sim::{Simulator, State};
use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "printer-sim",
    version,
    about = "Software card printer speaking the escape-command dialect",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Clone, Copy, ValueEnum)]
enum ReplyEnd {
    Cr,
    Nul,
}

impl From<ReplyEnd> for dialect::Terminator {
    fn from(r: ReplyEnd) -> Self {
        match r {
            ReplyEnd::Cr => dialect::Terminator::Cr,
            ReplyEnd::Nul => dialect::Terminator::Nul,
        }
    }
}

#[derive(Args, Clone)]
struct ModelArgs {
    /// Embedded profile id (evolis-km500b, evolis-km500b-older, instant-embosser-ie4).
    #[arg(long, conflicts_with = "profile")]
    model: Option<String>,
    /// A profile file (its `extends` is looked up next to it, then among the embedded ones).
    #[arg(long)]
    profile: Option<PathBuf>,
}

impl ModelArgs {
    fn config(&self) -> Result<SimConfig, String> {
        match (&self.profile, &self.model) {
            (Some(p), _) => SimConfig::from_profile_path(p).map_err(|e| e.to_string()),
            (None, Some(m)) => SimConfig::for_model(m).map_err(|e| e.to_string()),
            (None, None) => SimConfig::for_model("evolis-km500b").map_err(|e| e.to_string()),
        }
    }
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Physical time factor: 0 no delays, 1 realistic.
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Serve on a pseudo-terminal (the default when no link is given).
    #[arg(long)]
    pty: bool,
    /// Symlink to the pty (implies --pty); replaced if it exists.
    #[arg(long)]
    link: Option<PathBuf>,
    /// Serve on TCP (port 0 picks one).
    #[arg(long)]
    tcp: Option<SocketAddr>,
    /// Unix socket for `printer-sim ctl`.
    #[arg(long)]
    control: Option<PathBuf>,
    /// Scenario file (TOML).
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// What `Rsn` answers.
    #[arg(long)]
    serial: Option<String>,
    /// Feeders as "type:count,type:count".
    #[arg(long)]
    feeders: Option<String>,
    /// take:MS | never | refuse
    #[arg(long)]
    customer: Option<Customer>,
    /// Cards between cleanings: recommended at this count, required (the
    /// printer answers NEED CLEANING) at twice it.
    #[arg(long)]
    cleaning_interval: Option<u32>,
    /// The ribbon loaded at start (a type the profile lists: ymcko, ko, kb, k).
    #[arg(long)]
    ribbon: Option<String>,
    /// Cards' worth of panels on that ribbon.
    #[arg(long)]
    ribbon_cards: Option<u32>,
    /// Cards the reject box holds.
    #[arg(long)]
    reject_capacity: Option<u32>,
    /// pcscd's vpcd socket (HOST:PORT) for the card's chip.
    #[arg(long)]
    vpcd: Option<String>,
    /// Write a redacted transcript (JSON lines).
    #[arg(long)]
    record: Option<PathBuf>,
    /// Reply terminator: cr (serial, TCP) or nul (USB node).
    #[arg(long, value_enum, default_value = "cr")]
    reply_end: ReplyEnd,
    /// Follow ACK and NACK replies with the reply terminator too (some USB
    /// nodes do).
    #[arg(long)]
    ack_terminated: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// Drive a running simulator through its control socket.
    Ctl {
        /// The control socket (or PRINTER_SIM_CONTROL).
        #[arg(long, global = true)]
        control: Option<PathBuf>,
        #[command(subcommand)]
        op: CtlOp,
    },
    /// Play the device side of a transcript.
    Replay {
        /// The transcript (JSON lines, as --record writes it).
        file: PathBuf,
        /// Serve on a pseudo-terminal (the default).
        #[arg(long)]
        pty: bool,
        /// Symlink to the pty (implies --pty).
        #[arg(long)]
        link: Option<PathBuf>,
        /// Serve on TCP instead (port 0 picks one).
        #[arg(long, conflicts_with_all = ["pty", "link"])]
        tcp: Option<SocketAddr>,
        #[command(flatten)]
        model: ModelArgs,
        /// Reply terminator: cr (serial, TCP) or nul (USB node).
        #[arg(long, value_enum, default_value = "cr")]
        reply_end: ReplyEnd,
        /// Give up after this long without a frame.
        #[arg(long, default_value_t = 30_000)]
        idle_ms: u64,
    },
}

#[derive(Subcommand)]
enum CtlOp {
    /// Raise a condition: feeder-empty, feeder-jam, feeder-door-open, cover-open,
    /// ribbon-missing, ribbon-ended, ribbon-error, hopper-full, hopper-door-open,
    /// hopper-jam, reject-full, mag-write-fail, mag-read-mismatch, chip-mute,
    /// card-not-in-reader, emboss-fail, emboss-ribbon, paused, locked,
    /// unreachable[:ms], slow[:ms], garbage[:n], silent[:ms] (switched off on
    /// an open line: nothing answered, nothing done), power-cycle[:ms]
    /// (restart: silent while booting, default 1500 ms scaled by --speed and
    /// at least 50 ms, or exactly :ms; then unsaved settings are lost and the
    /// next Rst reports INF just_rebooted).
    Raise { condition: String },
    /// Clear one condition, or all (clearing silent or power-cycle ends it now).
    Clear { condition: Option<String> },
    /// The customer takes the presented card now.
    Take,
    /// take:MS | never | refuse
    Customer { customer: String },
    /// Switch an option (mag, smart, contactless, emboss, bezel, reject).
    Option { name: String, state: OnOff },
    /// Refill or change a feeder.
    Feeder {
        n: u8,
        #[arg(long)]
        count: u32,
        #[arg(long = "type")]
        card_type: Option<String>,
    },
    /// Load a new ribbon (a type the profile lists) with this many cards' worth of panels.
    Ribbon {
        #[arg(long = "type")]
        ribbon_type: String,
        #[arg(long)]
        cards: u32,
    },
    /// Empty the reject box or the output hopper.
    Empty { which: String },
    /// Change the serial number `Rsn` answers.
    Identity {
        #[arg(long)]
        serial: String,
    },
    /// Show the state (a summary, or the whole model with --json).
    State {
        #[arg(long)]
        json: bool,
    },
    /// Write a card's printed panels as PNG files.
    Dump { card: u64, dir: PathBuf },
}

#[derive(Clone, Copy, ValueEnum)]
enum OnOff {
    On,
    Off,
}

fn init_logs(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_env_filter(filter)
        .try_init();
}

/// One line on stdout, flushed at once: scripts wait for it.
fn announce(line: String) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        None => {
            init_logs("info");
            serve(cli.serve).await
        }
        Some(Cmd::Ctl { control, op }) => {
            init_logs("warn");
            ctl(control, op).await
        }
        Some(Cmd::Replay {
            file,
            pty,
            link,
            tcp,
            model,
            reply_end,
            idle_ms,
        }) => {
            init_logs("info");
            let _ = pty;
            replay(file, link, tcp, model, reply_end, idle_ms).await
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("printer-sim: {e}");
            ExitCode::from(2)
        }
    }
}

async fn serve(a: ServeArgs) -> Result<ExitCode, String> {
    let mut cfg = a.model.config()?;
    cfg.speed = a.speed;
    if !a.speed.is_finite() || a.speed < 0.0 {
        return Err(format!("--speed {}: expected 0 or more", a.speed));
    }
    if let Some(s) = a.serial {
        cfg.serial = s;
    }
    if let Some(f) = a.feeders {
        cfg.feeders = parse_feeders(&f)?;
        if cfg.feeders.len() > cfg.profile.feeders as usize {
            return Err(format!(
                "--feeders gives {} feeders, {} has {}",
                cfg.feeders.len(),
                cfg.profile.id,
                cfg.profile.feeders
            ));
        }
    }
    if let Some(n) = a.cleaning_interval {
        cfg.cleaning_interval = n;
    }
    if let Some(r) = a.ribbon {
        let r = r.to_ascii_lowercase();
        if !cfg.profile.ribbons.contains(&r) {
            return Err(format!(
                "--ribbon {r}: {} takes {}",
                cfg.profile.id,
                cfg.profile.ribbons.join(", ")
            ));
        }
        cfg.ribbon_type = r;
    }
    if let Some(n) = a.ribbon_cards {
        cfg.ribbon_cards = n;
    }
    if let Some(n) = a.reject_capacity {
        cfg.reject_capacity = n;
    }
    if let Some(c) = a.customer {
        cfg.customer = c;
    }
    if let Some(v) = a.vpcd {
        let addr = v
            .to_socket_addrs()
            .map_err(|e| format!("--vpcd {v}: {e}"))?
            .next()
            .ok_or_else(|| format!("--vpcd {v}: no address"))?;
        cfg.vpcd = Some(addr);
    }
    if let Some(s) = a.scenario {
        cfg.scenario = Some(Scenario::load(&s).map_err(|e| e.to_string())?);
    }
    cfg.record = a.record;
    cfg.reply_terminator = a.reply_end.into();
    cfg.ack_terminated = a.ack_terminated;
    let sim = Simulator::try_new(cfg).map_err(|e| format!("--record: {e}"))?;

    let want_pty = a.pty || a.link.is_some() || a.tcp.is_none();
    if want_pty {
        let path = sim
            .serve_pty(a.link.as_deref())
            .await
            .map_err(|e| format!("pty: {e}"))?;
        announce(format!("pty {}", path.display()));
    }
    if let Some(addr) = a.tcp {
        let bound = sim
            .serve_tcp(addr)
            .await
            .map_err(|e| format!("tcp {addr}: {e}"))?;
        announce(format!("tcp {bound}"));
    }
    if let Some(c) = &a.control {
        sim.serve_control(c)
            .await
            .map_err(|e| format!("control {}: {e}", c.display()))?;
        announce(format!("control {}", c.display()));
    }
    wait_for_stop().await;
    tracing::info!("stopping");
    if let Some(c) = &a.control {
        let _ = std::fs::remove_file(c);
    }
    if let Some(l) = &a.link {
        if std::fs::symlink_metadata(l).is_ok_and(|m| m.file_type().is_symlink()) {
            let _ = std::fs::remove_file(l);
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_stop() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

async fn ctl(control: Option<PathBuf>, op: CtlOp) -> Result<ExitCode, String> {
    let path = control
        .or_else(|| std::env::var_os("PRINTER_SIM_CONTROL").map(PathBuf::from))
        .ok_or("ctl needs --control PATH (or PRINTER_SIM_CONTROL)")?;
    let (req, json_state) = match op {
        CtlOp::Raise { condition } => (Request::Raise { condition }, false),
        CtlOp::Clear { condition } => (Request::Clear { condition }, false),
        CtlOp::Take => (Request::Take, false),
        CtlOp::Customer { customer } => (Request::Customer { customer }, false),
        CtlOp::Option { name, state } => (
            Request::Option {
                name,
                on: matches!(state, OnOff::On),
            },
            false,
        ),
        CtlOp::Feeder {
            n,
            count,
            card_type,
        } => (
            Request::Feeder {
                n,
                count,
                card_type,
            },
            false,
        ),
        CtlOp::Identity { serial } => (Request::Identity { serial }, false),
        CtlOp::Ribbon { ribbon_type, cards } => (Request::Ribbon { ribbon_type, cards }, false),
        CtlOp::Empty { which } => (Request::Empty { which }, false),
        CtlOp::State { json } => (Request::State, json),
        CtlOp::Dump { card, dir } => {
            // The simulator writes the files: give it a path that means the same there.
            let dir = std::path::absolute(&dir).unwrap_or(dir);
            (Request::Dump { card, dir }, false)
        }
    };
    let answer = control::request(&path, &req)
        .await
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if answer.get("ok").and_then(|v| v.as_bool()) != Some(true) {
        let e = answer
            .get("error")
            .and_then(|v| v.as_str())
            .unwrap_or("the simulator refused the request");
        eprintln!("printer-sim ctl: {e}");
        return Ok(ExitCode::FAILURE);
    }
    match req {
        Request::State => {
            let state = answer.get("state").cloned().unwrap_or_default();
            if json_state {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&state).unwrap_or_default()
                );
            } else {
                print_summary(&state);
            }
        }
        Request::Take => {
            let taken = answer
                .get("taken")
                .and_then(|v| v.as_bool())
                .unwrap_or(false);
            println!(
                "{}",
                if taken {
                    "taken"
                } else {
                    "no card in the bezel"
                }
            );
        }
        Request::Dump { .. } => {
            for f in answer
                .get("files")
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
            {
                println!("{}", f.as_str().unwrap_or_default());
            }
        }
        _ => println!("ok"),
    }
    Ok(ExitCode::SUCCESS)
}

/// The state as a person reads it; the JSON is the simulator's `State`.
fn print_summary(state: &serde_json::Value) {
    match serde_json::from_value::<State>(state.clone()) {
        Ok(s) => print!("{}", s.summary()),
        Err(_) => println!(
            "{}",
            serde_json::to_string_pretty(state).unwrap_or_default()
        ),
    }
}

async fn replay(
    file: PathBuf,
    link: Option<PathBuf>,
    tcp: Option<SocketAddr>,
    model: ModelArgs,
    reply_end: ReplyEnd,
    idle_ms: u64,
) -> Result<ExitCode, String> {
    let transcript = Transcript::load(&file).map_err(|e| e.to_string())?;
    let cfg = model.config()?;
    let opts = ReplayOptions {
        terminator: reply_end.into(),
        geometry: cfg.profile.geometry,
        idle: Duration::from_millis(idle_ms.max(1)),
    };
    let mut replayer = Replayer::new(&transcript, opts);
    match tcp {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("tcp {addr}: {e}"))?;
            announce(format!(
                "tcp {}",
                listener.local_addr().map_err(|e| e.to_string())?
            ));
            while !replayer.done() {
                match tokio::time::timeout(opts.idle, listener.accept()).await {
                    Ok(Ok((stream, _))) => {
                        if let Err(e) = replayer.serve(stream).await {
                            tracing::warn!(error = %e, "replay connection failed");
                        }
                    }
                    Ok(Err(e)) => return Err(format!("accept: {e}")),
                    Err(_) => break,
                }
            }
        }
        None => {
            let pty = Pty::open().map_err(|e| format!("pty: {e}"))?;
            let shown = match &link {
                Some(l) => {
                    point_link(l, pty.path()).map_err(|e| e.to_string())?;
                    l.clone()
                }
                None => pty.path().to_path_buf(),
            };
            announce(format!("pty {}", shown.display()));
            replayer.serve(pty).await.map_err(|e| e.to_string())?;
            // Let the last replies reach the reader before the pty closes.
            tokio::time::sleep(Duration::from_millis(500)).await;
            if let Some(l) = &link {
                let _ = std::fs::remove_file(l);
            }
        }
    }
    let report = replayer.report();
    for d in &report.divergences {
        println!("divergence: {d}");
    }
    println!("{}", report.summary());
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
