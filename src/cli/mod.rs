//! Command line: one binary, subcommands: the daemon (`run`), and the
//! technicians' commands, which go through the running agent's local API
//! (docs/CLI.md: every command, its `--json` shape and its exit statuses).

mod agent;
mod diag;
mod docs;
mod doctor;
mod inventory;
mod jobs;
mod outbox;
mod output;
mod printer;
pub(crate) mod render;
mod status;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "satellite",
    version,
    about = "Card-issuing kiosk agent: drives the card printer and reports production status"
)]
pub struct Cli {
    /// More log output (-v, -vv); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// The configuration file (the agent's; the technicians' commands read
    /// its socket and printer from it).
    #[arg(long, short = 'c', global = true, env = "SATELLITE_CONFIG", default_value = agent::DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// The agent's local API socket (default: the configuration's
    /// `[api] socket`, else /run/satellite/api.sock).
    #[arg(long, global = true, env = "SATELLITE_SOCKET")]
    pub socket: Option<PathBuf>,
    /// Print JSON (the shapes are in docs/CLI.md) instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent (the daemon): production engine and local API, with
    /// the configuration given by --config (see README.md).
    Run,
    /// One screen: what the agent does, the printer, supplies, queue, cards
    /// in doubt, upstream links and their backlog. Exit 0 when a card could
    /// be produced now, 2 when production is stopped.
    Status {
        /// Redraw every --every seconds until interrupted.
        #[arg(long)]
        watch: bool,
        #[arg(long, default_value_t = 2.0, requires = "watch")]
        every: f64,
    },
    /// The main job on the bundled simulator: a handful of cards, some with faults.
    #[cfg_attr(not(feature = "simulator"), command(hide = true))]
    Demo,
    /// Create the card-data key file (32 random bytes, mode 0600; never overwrites).
    Keygen {
        /// Where to write it, e.g. /etc/satellite/card.key.
        file: std::path::PathBuf,
    },
    /// Drive N cards through the simulator (speed 0) and print throughput, CPU, step times, peak RSS.
    #[cfg_attr(not(feature = "simulator"), command(hide = true))]
    Bench {
        /// Cards produced: 500 unless given (200 with --upstream).
        #[arg(long)]
        cards: Option<usize>,
        #[arg(long)]
        json: bool,
        /// Instead: recovery time after link outages, and submission latency
        /// while the printer is slow.
        #[arg(long)]
        link: bool,
        /// With --link: how many outages (log-spaced from 0.3 s).
        #[arg(long, default_value_t = 30)]
        outages: usize,
        /// With --link: the longest outage, in seconds.
        #[arg(long, default_value_t = 60.0)]
        max_outage_s: f64,
        /// Instead: delivery upstream against the reference central base on
        /// loopback: latency of each status change per sink (--cards, 200
        /// unless given), and the time to drain a backlog (--events).
        #[arg(long, conflicts_with = "link")]
        upstream: bool,
        /// With --upstream: status changes queued while the upstream is down.
        #[arg(long, default_value_t = 10_000)]
        events: usize,
        /// Instead: SIGKILL the daemon (`satellite run`, a child process)
        /// N times while it tells D1 of produced cards, and count D1's
        /// duplicate Track Card calls per kill.
        #[arg(long, value_name = "N", conflicts_with_all = ["link", "upstream", "startup", "idle", "supplies"])]
        d1_kills: Option<usize>,
        /// Instead: the daemon's start-up, exec to READY=1 (sd_notify), on
        /// a store of 10,000 finished cards (--runs starts).
        #[arg(long, conflicts_with_all = ["link", "upstream"])]
        startup: bool,
        /// With --startup: how many starts.
        #[arg(long, default_value_t = 20)]
        runs: usize,
        /// Instead: the idle agent's footprint (RSS, CPU, wake-ups) with a
        /// connected printer, next to NUT's upsd + dummy-ups and gpsd when
        /// installed, and how soon a fault raised while idle shows.
        #[arg(long, conflicts_with_all = ["link", "upstream", "startup"])]
        idle: bool,
        /// With --idle: the measuring window, in seconds.
        #[arg(long, default_value_t = 60, requires = "idle")]
        seconds: u64,
        /// With --idle: the agent binary to measure (the packaged build,
        /// without the simulator); this binary by default.
        #[arg(long, requires = "idle", value_name = "PATH")]
        agent: Option<std::path::PathBuf>,
        /// With --idle: the agent's `[printer] idle_probe_ms` (its default
        /// unless given).
        #[arg(long, requires = "idle", value_name = "MS")]
        probe_ms: Option<u64>,
        /// Instead: a kiosk's ordinary life on a schedule (--cards, 1,000
        /// unless given): the ribbon runs out, the feeder empties, cleaning
        /// falls due, the reject box fills; blank cards spent on foreseeable
        /// refusals, and how long before each stop the warning came.
        #[arg(long, conflicts_with_all = ["link", "upstream", "startup", "idle"])]
        supplies: bool,
    },
    /// Every check a technician makes at a broken kiosk, PASS / WARN / FAIL
    /// with a remedy each. Exit status: the worst result (0, 1, 2).
    Doctor,
    /// The printer: info, status, clean, test card, reset, raw, trace.
    #[command(subcommand)]
    Printer(printer::PrinterCommand),
    /// Cards: list, show, cancel, resolve a card in doubt.
    #[command(subcommand)]
    Jobs(jobs::JobsCommand),
    /// Status changes waiting to go upstream, and dead letters.
    #[command(subcommand)]
    Outbox(outbox::OutboxCommand),
    /// What each feeder holds (after loading cards: `inventory set`).
    #[command(subcommand)]
    Inventory(inventory::InventoryCommand),
    /// Diagnostics for support: `diag bundle` writes one redacted archive.
    #[command(subcommand)]
    Diag(diag::DiagCommand),
    /// Write the man pages (satellite.1 and one per command) into DIR.
    #[command(hide = true)]
    Man { dir: PathBuf },
    /// Print the shell completion script for SHELL (bash, zsh, fish...).
    #[command(hide = true)]
    Completions { shell: clap_complete::Shell },
}

/// Runs a technician's command and turns its outcome into an exit status.
async fn technician(cli: Cli) -> ExitCode {
    let agent = agent::Agent::new(agent::socket(cli.socket.as_deref(), &cli.config));
    let json = cli.json;
    let result = match cli.command {
        Command::Status { watch, every } => {
            status::run(
                &agent,
                watch,
                std::time::Duration::from_secs_f64(every.clamp(0.2, 3600.0)),
                json,
            )
            .await
        }
        Command::Doctor => doctor::run(&agent, &cli.config, json).await,
        Command::Printer(p) => printer::run(p, &agent, &cli.config, json).await,
        Command::Jobs(j) => jobs::run(&agent, j, json).await,
        Command::Outbox(o) => outbox::run(&agent, o, json).await,
        Command::Inventory(i) => inventory::run(&agent, i, json).await,
        Command::Diag(d) => diag::run(&agent, &cli.config, d, json).await,
        _ => unreachable!("only technicians' commands come here"),
    };
    match result {
        Ok(code) => output::code(code),
        Err(e) => {
            if json {
                output::json(
                    &serde_json::json!({ "error": { "message": e.message, "next": e.next } }),
                );
            } else {
                output::problem(&e.message, &e.next);
            }
            output::code(e.exit)
        }
    }
}

pub async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Status { .. }
        | Command::Doctor
        | Command::Printer(_)
        | Command::Jobs(_)
        | Command::Outbox(_)
        | Command::Inventory(_)
        | Command::Diag(_) => technician(cli).await,
        Command::Run => match crate::daemon::run(&cli.config).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "satellite cannot run");
                eprintln!("satellite: {e}");
                ExitCode::from(78)
            }
        },
        #[cfg(not(feature = "simulator"))]
        Command::Bench { .. } => without_simulator("bench"),
        #[cfg(feature = "simulator")]
        Command::Bench {
            startup: true,
            runs,
            json,
            ..
        } => match crate::bench_startup::run(runs, json).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("satellite bench --startup: {e}");
                ExitCode::from(1)
            }
        },
        #[cfg(feature = "simulator")]
        Command::Bench {
            link: true,
            outages,
            max_outage_s,
            json,
            ..
        } => match crate::bench_link::run(
            outages,
            std::time::Duration::from_secs_f64(max_outage_s.clamp(0.3, 3600.0)),
            json,
        )
        .await
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("satellite bench --link: {e}");
                ExitCode::from(1)
            }
        },
        #[cfg(feature = "simulator")]
        Command::Bench {
            idle: true,
            seconds,
            agent,
            probe_ms,
            json,
            ..
        } => match crate::bench_idle::run(seconds, agent, probe_ms, json).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("satellite bench --idle: {e}");
                ExitCode::from(1)
            }
        },
        #[cfg(feature = "simulator")]
        Command::Bench {
            d1_kills: Some(kills),
            json,
            ..
        } => match crate::bench_d1_kills::run(kills, json).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("satellite bench --d1-kills: {e}");
                ExitCode::from(1)
            }
        },
        #[cfg(feature = "simulator")]
        Command::Bench {
            upstream: true,
            cards,
            events,
            json,
            ..
        } => match crate::bench_upstream::run(cards.unwrap_or(200), events, json).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("satellite bench --upstream: {e}");
                ExitCode::from(1)
            }
        },
        #[cfg(feature = "simulator")]
        Command::Bench {
            supplies: true,
            cards,
            json,
            ..
        } => match crate::bench_supplies::run(cards.unwrap_or(1000), json).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("satellite bench --supplies: {e}");
                ExitCode::from(1)
            }
        },
        #[cfg(feature = "simulator")]
        Command::Bench { cards, json, .. } => {
            match crate::bench::run(cards.unwrap_or(500), json).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("satellite bench: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Man { dir } => docs::man(&dir),
        Command::Completions { shell } => docs::completions(shell),
        Command::Keygen { file } => match crate::store::Keys::generate(&file) {
            Ok(_) => {
                println!("card-data key written to {} (keep it readable by the agent only, and back it up: without it the stored card data cannot be read)", file.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("satellite keygen: {e}");
                ExitCode::from(1)
            }
        },
        #[cfg(not(feature = "simulator"))]
        Command::Demo => without_simulator("demo"),
        #[cfg(feature = "simulator")]
        Command::Demo => match crate::demo::run().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("satellite demo: {e}");
                ExitCode::from(1)
            }
        },
    }
}

/// `demo` and `bench` in a build without the simulator.
#[cfg(not(feature = "simulator"))]
fn without_simulator(command: &str) -> ExitCode {
    eprintln!(
        "satellite {command}: {} (`{command}` runs on it: build with the default features)",
        crate::bundled_sim::NO_SIMULATOR
    );
    ExitCode::from(64)
}
