//! The bundled printer simulator (`printer-sim`), behind the `simulator` cargo
//! feature (on by default).
//!
//! It serves `device = "sim"`, `satellite printer ... --sim`, the demo and the
//! benchmark. A production build (`--no-default-features`, the Debian
//! package) leaves it out: the configuration refuses `device = "sim"`, and
//! what needs the simulator says why it cannot run.

use std::path::PathBuf;

/// Why a build without the `simulator` feature cannot do what was asked.
pub const NO_SIMULATOR: &str =
    "this build has no bundled simulator: it was built without the `simulator` feature";

/// A running simulator: kept alive as long as its link is used.
#[cfg(feature = "simulator")]
pub type Simulator = printer_sim::Simulator;

/// A running simulator: none can exist in this build.
#[cfg(not(feature = "simulator"))]
pub enum Simulator {}

/// Starts a simulator of `model` (a profile id) behind a new pseudo-terminal
/// and returns the terminal's path with the simulator.
#[cfg(feature = "simulator")]
pub async fn start_pty(model: &str, speed: f64) -> Result<(PathBuf, Simulator), String> {
    let mut config =
        printer_sim::SimConfig::for_model(model).map_err(|e| format!("simulator: {e}"))?;
    config.speed = speed;
    let sim = printer_sim::Simulator::new(config);
    let path = sim
        .serve_pty(None)
        .await
        .map_err(|e| format!("simulator: {e}"))?;
    Ok((path, sim))
}

/// Refuses: this build has no simulator ([`NO_SIMULATOR`]).
#[cfg(not(feature = "simulator"))]
pub async fn start_pty(_model: &str, _speed: f64) -> Result<(PathBuf, Simulator), String> {
    Err(NO_SIMULATOR.to_string())
}
