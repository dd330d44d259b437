//! `satellite printer ...`: the printer, for technicians.
//!
//! While the agent runs it owns the printer's port, so every command goes
//! through its local API: reads come from its published view (`status`
//! reads the printer afresh), operations run between cards. With `--direct`
//! a command talks to the device itself, and refuses while the agent runs.
//! Reads send only read commands (and the handshake's `Pem`, which every
//! connection sets); `raw` sends exactly what the technician typed; nothing
//! else writes to the device unless asked (`clean`, `test-card`, `reset`).

use super::agent::{Agent, CliError};
use super::output::{self, exit};
use super::render;
use crate::bundled_sim::Simulator;
use crate::codes::Fault;
use crate::printer::profile::{FlowControl, Parity};
use crate::printer::{Backoff, Endpoint, LinkSettings, Printer, Profile};
use clap::{Args, Subcommand};
use dialect::ops::Op;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Args)]
pub struct Direct {
    /// Talk to the device itself instead of through the running agent
    /// (refused while the agent runs: it owns the port).
    #[arg(long)]
    direct: bool,
    /// The printer (/dev/ttyS0, serial://PATH, usb:///dev/usb/lp0 or
    /// tcp://HOST:PORT), directly (implies --direct); with --direct alone:
    /// the configuration's.
    #[arg(long, short = 'd', conflicts_with = "sim")]
    device: Option<String>,
    /// With --direct: the model profile, an id (evolis-km500b,
    /// evolis-km500b-older, instant-embosser-ie4) or a .toml path; default:
    /// the configuration's, else evolis-km500b.
    #[arg(long, short = 'm')]
    model: Option<String>,
    /// Directory of extra profiles (id.toml).
    #[arg(long)]
    hardware_dir: Option<PathBuf>,
    /// Use ACK/NACK mode on the link.
    #[arg(long)]
    ack_nack: bool,
    /// Override the profile's serial speed (2400 to 115200).
    #[arg(long, value_parser = clap::value_parser!(u32).range(2400..=115200))]
    baud: Option<u32>,
    /// Override the profile's serial parity.
    #[arg(long, value_enum)]
    parity: Option<Parity>,
    /// Override the profile's data bits.
    #[arg(long, value_parser = clap::value_parser!(u8).range(5..=8))]
    data_bits: Option<u8>,
    /// Override the profile's stop bits.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=2))]
    stop_bits: Option<u8>,
    /// Override the profile's flow control.
    #[arg(long, value_enum)]
    flow_control: Option<FlowControl>,
    /// Start the bundled printer simulator behind a pseudo-terminal and talk
    /// to it (implies --direct).
    #[arg(long)]
    #[cfg_attr(not(feature = "simulator"), arg(hide = true))]
    sim: bool,
}

#[derive(Debug, Subcommand)]
pub enum PrinterCommand {
    /// Identity, profile and capabilities.
    Info(Direct),
    /// Read the printer now: flags, faults, feeders, ribbon, sensors,
    /// counters. Exit 0 when ready to produce, 2 when a fault stops
    /// production, 69 when it cannot be reached.
    Status(Direct),
    /// A cleaning cycle (load a cleaning card first).
    Clean(Direct),
    /// Print the printer's test card (into the output hopper).
    TestCard(Direct),
    /// Software reset (the printer restarts; the agent sets it up again).
    Reset(Direct),
    /// Send one command as typed (mnemonic;param;...) and show the reply.
    Raw {
        #[command(flatten)]
        target: Direct,
        /// For example `Rse;o` or `Rco;c`.
        command: String,
    },
    /// The agent's recent exchanges with the printer (redacted).
    Trace {
        /// How many exchanges, newest last.
        #[arg(long, default_value_t = 50)]
        last: usize,
    },
}

pub async fn run(
    cmd: PrinterCommand,
    agent: &Agent,
    config: &Path,
    json_out: bool,
) -> Result<u8, CliError> {
    let (target, what) = match &cmd {
        PrinterCommand::Info(t) => (t, "info"),
        PrinterCommand::Status(t) => (t, "status"),
        PrinterCommand::Clean(t) => (t, "clean"),
        PrinterCommand::TestCard(t) => (t, "test-card"),
        PrinterCommand::Reset(t) => (t, "reset"),
        PrinterCommand::Raw { target, .. } => (target, "raw"),
        PrinterCommand::Trace { last } => return trace(agent, *last, json_out).await,
    };
    // Naming a device (or the simulator) means that device, directly.
    if target.direct || target.sim || target.device.is_some() {
        return direct(&cmd, target, agent, config, json_out).await;
    }
    let v = match &cmd {
        PrinterCommand::Info(_) => agent.get("/v1/printer/info").await?,
        PrinterCommand::Status(_) => {
            let p = agent.get("/v1/printer?fresh=true").await?;
            let mut v = p["snapshot"].clone();
            if !v.is_object() {
                v = json!({});
            }
            v["ready"] = p["ready"].clone();
            v["endpoint"] = agent.get("/v1/printer/info").await?["endpoint"].clone();
            v["link"] = p["link"].clone();
            if let Some(f) = p["refreshError"].as_object() {
                v["refreshError"] = Value::Object(f.clone());
            }
            v
        }
        PrinterCommand::Raw { command, .. } => {
            let done = agent
                .post("/v1/printer/raw", &json!({ "command": command }))
                .await?;
            // The same shape as --direct: what went out, what came back.
            json!({
                "sent": done["operation"].as_str().unwrap_or("").trim_start_matches("raw "),
                "reply": done["reply"],
                "fault": done["fault"],
            })
        }
        _ => {
            let pb = output::spinner(&format!("{what}: waiting for the printer"), json_out);
            let r = agent.post(&format!("/v1/printer/{what}"), &json!({})).await;
            pb.finish_and_clear();
            r?
        }
    };
    show(&cmd, &v, json_out)
}

/// Prints an answer (the same shape from both paths) and picks the exit status.
fn show(cmd: &PrinterCommand, v: &Value, json_out: bool) -> Result<u8, CliError> {
    if json_out {
        output::json(v);
    }
    match cmd {
        PrinterCommand::Info(_) => {
            if !json_out {
                render::info(v);
            }
            Ok(exit::OK)
        }
        PrinterCommand::Status(_) => {
            if !json_out {
                render::snapshot(v);
            }
            Ok(if v["ready"] == true {
                exit::OK
            } else {
                exit::FAIL
            })
        }
        PrinterCommand::Raw { .. } => {
            if !json_out {
                render::raw(v);
            }
            // The printer answered with a refusal: shown, and said by the status.
            Ok(if v["fault"].is_object() {
                exit::WARN
            } else {
                exit::OK
            })
        }
        _ => {
            let f = &v["fault"];
            if !json_out {
                if f.is_object() {
                    output::problem(
                        &format!(
                            "{}: the printer refused: {} {}",
                            v["operation"].as_str().unwrap_or(""),
                            f["code"].as_str().unwrap_or(""),
                            f["description"].as_str().unwrap_or("")
                        ),
                        "see `satellite printer status`",
                    );
                } else {
                    output::line(format!(
                        "{}: done in {:.1} s",
                        v["operation"].as_str().unwrap_or(""),
                        v["seconds"].as_f64().unwrap_or(0.0)
                    ));
                }
            }
            Ok(if f.is_object() { exit::WARN } else { exit::OK })
        }
    }
}

async fn trace(agent: &Agent, last: usize, json_out: bool) -> Result<u8, CliError> {
    let v = agent
        .get(&format!("/v1/printer/trace?last={}", last.clamp(1, 1000)))
        .await?;
    if json_out {
        output::json(&v);
        return Ok(exit::OK);
    }
    let rows = v["exchanges"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            vec![
                e["at"].as_str().unwrap_or("").to_string(),
                e["sent"].as_str().unwrap_or("").to_string(),
                e["reply"].as_str().unwrap_or("").to_string(),
                e["ms"].to_string(),
                e["outcome"].as_str().unwrap_or("").to_string(),
            ]
        })
        .collect();
    output::line(output::table(
        &["AT", "SENT", "REPLY", "MS", "OUTCOME"],
        rows,
    ));
    Ok(exit::OK)
}

/// `--direct`: the device itself, unless the agent runs and owns it.
async fn direct(
    cmd: &PrinterCommand,
    t: &Direct,
    agent: &Agent,
    config: &Path,
    json_out: bool,
) -> Result<u8, CliError> {
    if !t.sim && agent.get("/v1/status").await.is_ok() {
        return Err(CliError::new(
            exit::BUSY,
            format!(
                "the agent is running (it answers at {}) and owns the printer's port: --direct would fight it for the line",
                agent.socket.display()
            ),
            "drop --direct to go through the agent, or stop it first (`sudo systemctl stop satellite`)",
        ));
    }
    let (printer, endpoint, _sim) = open(t, config).await?;
    let identity = match printer.connect().await {
        Ok(id) => id,
        Err(f) => {
            render::fault_out(&f, json_out);
            return Ok(exit::UNAVAILABLE);
        }
    };
    let v = match cmd {
        PrinterCommand::Info(_) => render::info_json(Some(&identity), printer.profile(), &endpoint),
        PrinterCommand::Status(_) => match printer.snapshot().await {
            Ok(s) => render::snapshot_json(&s, &endpoint),
            Err(f) => {
                render::fault_out(&f, json_out);
                return Ok(exit::UNAVAILABLE);
            }
        },
        PrinterCommand::Raw { command, .. } => {
            let c = crate::printer::raw::parse(command).map_err(|m| {
                CliError::new(exit::USAGE, m, "type it as MNEMONIC;PARAM;... e.g. Rse;o")
            })?;
            let shown = c.display_redacted();
            match printer
                .with_conn(move |conn| {
                    Box::pin(async move { conn.raw(c).await.map(Ok::<_, Fault>) })
                })
                .await
            {
                Ok((reply, fault)) => render::raw_json(&shown, &reply, fault.as_ref()),
                Err(f) => {
                    render::fault_out(&f, json_out);
                    return Ok(exit::UNAVAILABLE);
                }
            }
        }
        PrinterCommand::Clean(_) | PrinterCommand::TestCard(_) | PrinterCommand::Reset(_) => {
            let (op, name) = match cmd {
                PrinterCommand::Clean(_) => (Op::Clean, "clean"),
                PrinterCommand::TestCard(_) => (Op::TestCard, "test-card"),
                _ => (Op::SoftReset, "reset"),
            };
            let pb = output::spinner(&format!("{name}: the printer is working"), json_out);
            let started = std::time::Instant::now();
            let r = printer.run(op).await;
            pb.finish_and_clear();
            json!({
                "operation": name,
                "reply": null,
                "fault": r.err(),
                "seconds": started.elapsed().as_secs_f64(),
            })
        }
        PrinterCommand::Trace { .. } => unreachable!("trace goes through the agent"),
    };
    show(cmd, &v, json_out)
}

/// Opens the target: the device named (or the configuration's), or a
/// simulator of the model started here.
async fn open(
    t: &Direct,
    config: &Path,
) -> Result<(Printer, Endpoint, Option<Simulator>), CliError> {
    let configured = std::fs::read_to_string(config)
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok());
    let from_config = |key: &str| {
        configured
            .as_ref()
            .and_then(|c| c.get("printer")?.get(key)?.as_str().map(str::to_string))
    };
    let model = t
        .model
        .clone()
        .or_else(|| from_config("model"))
        .unwrap_or_else(|| "evolis-km500b".into());
    let usage = |m: String| CliError::new(exit::USAGE, m, "");
    let profile = Arc::new(
        Profile::load(&model, t.hardware_dir.as_deref()).map_err(|e| usage(e.to_string()))?,
    );
    let (endpoint, sim) =
        if t.sim {
            let (path, sim) = crate::bundled_sim::start_pty(&profile.model.id, 0.0)
                .await
                .map_err(|e| usage(format!("--sim: {e}")))?;
            (Endpoint::Serial(path), Some(sim))
        } else {
            let device =
                t.device
                    .clone()
                    .or_else(|| from_config("device"))
                    .ok_or_else(|| {
                        CliError::new(
                exit::USAGE,
                format!("no printer named: {} has no [printer] device", config.display()),
                "name it with --device /dev/ttyS0 (or usb:///dev/usb/lp0, tcp://HOST:PORT)",
            )
                    })?;
            (device.parse::<Endpoint>().map_err(usage)?, None)
        };
    let mut settings = LinkSettings::from_profile(endpoint.clone(), &profile);
    settings.ack_nack = t.ack_nack;
    let serial = &mut settings.serial;
    serial.baud = t.baud.unwrap_or(serial.baud);
    serial.parity = t.parity.unwrap_or(serial.parity);
    serial.data_bits = t.data_bits.unwrap_or(serial.data_bits);
    serial.stop_bits = t.stop_bits.unwrap_or(serial.stop_bits);
    serial.flow_control = t.flow_control.unwrap_or(serial.flow_control);
    let printer = Printer::new(settings, profile, Backoff::default(), None, false);
    Ok((printer, endpoint, sim))
}
