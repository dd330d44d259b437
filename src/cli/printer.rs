//! `satellite printer ...`: field tools that talk straight to a device.
//!
//! They read unless told otherwise: `info` and `status` send only read
//! commands (and the handshake's `Pem`, which every connection sets); `raw`
//! sends exactly what the technician typed.

use super::render;
use crate::bundled_sim::Simulator;
use crate::codes::Fault;
use crate::printer::profile::{FlowControl, Parity};
use crate::printer::{Backoff, Endpoint, LinkSettings, Printer, Profile};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, Args)]
pub struct Target {
    /// The printer: /dev/ttyS0, serial://PATH, usb:///dev/usb/lp0 or tcp://HOST:PORT.
    #[arg(
        long,
        short = 'd',
        required_unless_present = "sim",
        conflicts_with = "sim"
    )]
    device: Option<String>,
    /// Printer model profile: an id (evolis-km500b, evolis-km500b-older,
    /// instant-embosser-ie4) or a .toml path.
    #[arg(long, short = 'm', default_value = "evolis-km500b")]
    model: String,
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
    /// Start the bundled printer simulator behind a pseudo-terminal and talk to it.
    #[arg(long)]
    #[cfg_attr(not(feature = "simulator"), arg(hide = true))]
    sim: bool,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
pub enum PrinterCommand {
    /// Identity, profile and capabilities.
    Info(Target),
    /// Status flags, faults, feeders, ribbon, sensors, counters. Exit 0 when
    /// ready to produce, 2 when a fault stops production, 1 when unreachable.
    Status(Target),
    /// Send one command as typed (mnemonic;param;...) and show the reply.
    Raw {
        #[command(flatten)]
        target: Target,
        /// For example `Rse;o` or `Rco;c`.
        command: String,
    },
}

pub async fn run(cmd: PrinterCommand) -> ExitCode {
    let target = match &cmd {
        PrinterCommand::Info(t)
        | PrinterCommand::Status(t)
        | PrinterCommand::Raw { target: t, .. } => t,
    };
    let json = target.json;
    let (printer, endpoint, _sim) = match open(target).await {
        Ok(x) => x,
        Err(message) => {
            eprintln!("satellite: {message}");
            return ExitCode::from(64);
        }
    };
    let identity = match printer.connect().await {
        Ok(id) => id,
        Err(f) => {
            render::fault_out(&f, json);
            return ExitCode::from(1);
        }
    };
    match cmd {
        PrinterCommand::Info(_) => {
            render::info(&identity, printer.profile(), &endpoint, json);
            ExitCode::SUCCESS
        }
        PrinterCommand::Status(_) => match printer.snapshot().await {
            Ok(s) => {
                render::snapshot(&s, &endpoint, json);
                if s.ready() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(2)
                }
            }
            Err(f) => {
                render::fault_out(&f, json);
                ExitCode::from(1)
            }
        },
        PrinterCommand::Raw { command, .. } => {
            let cmd = match parse_raw(&command) {
                Ok(c) => c,
                Err(m) => {
                    eprintln!("satellite: {m}");
                    return ExitCode::from(64);
                }
            };
            let shown = cmd.display_redacted();
            match printer
                .with_conn(move |c| Box::pin(async move { c.raw(cmd).await.map(Ok::<_, Fault>) }))
                .await
            {
                Ok((reply, fault)) => {
                    render::raw(&shown, &reply, fault.as_ref(), json);
                    ExitCode::SUCCESS
                }
                Err(f) => {
                    render::fault_out(&f, json);
                    ExitCode::from(1)
                }
            }
        }
    }
}

/// Opens the target: the device named, or a simulator of the model started here.
async fn open(t: &Target) -> Result<(Printer, Endpoint, Option<Simulator>), String> {
    let profile =
        Arc::new(Profile::load(&t.model, t.hardware_dir.as_deref()).map_err(|e| e.to_string())?);
    let (endpoint, sim) = if t.sim {
        let (path, sim) = crate::bundled_sim::start_pty(&profile.model.id, 0.0)
            .await
            .map_err(|e| format!("--sim: {e}"))?;
        (Endpoint::Serial(path), Some(sim))
    } else {
        (
            t.device
                .as_deref()
                .unwrap_or_default()
                .parse::<Endpoint>()?,
            None,
        )
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

/// `Rse;o` -> Command { Rse, [o] }. Binary payloads cannot be typed here.
fn parse_raw(text: &str) -> Result<dialect::Command, String> {
    let text = text
        .trim()
        .trim_start_matches('\u{1b}')
        .trim_end_matches('\r');
    let mut parts = text.split(';');
    let mnemonic = parts.next().unwrap_or_default();
    let mut c = dialect::Command::new(mnemonic);
    for p in parts {
        c = c.param(p);
    }
    c.to_bytes().map_err(|e| format!("{text:?}: {e}"))?;
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_commands_parse() {
        let c = parse_raw("Rse;o").unwrap();
        assert_eq!(c.mnemonic, "Rse");
        assert_eq!(c.params, vec!["o"]);
        assert!(parse_raw("").is_err());
        assert!(parse_raw("R1").is_err());
    }
}
