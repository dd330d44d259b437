//! `satellite run`: the daemon. Opens the store, the printer link and the chip
//! station, runs the production engine, and serves the local API on its Unix
//! socket (and, when configured, on loopback TCP with a bearer token) until
//! SIGTERM or SIGINT, finishing the card in production first (the API keeps
//! serving until it is decided, so that final validation can answer).
//! SIGHUP reloads the configuration file (`supervision/reload.rs`). The
//! service manager is told of readiness, status, stops and reloads, and
//! the watchdog is pinged while the production loop moves
//! (`src/supervision/`).

use crate::api;
use crate::chip::PcscStation;
use crate::config::Config;
use crate::engine::Engine;
use crate::printer::{Backoff, Endpoint, LinkSettings, Printer, Profile};
use crate::store::{Keys, Store};
use crate::supervision::{self, NotifyState};
use std::path::Path;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// A running daemon.
pub struct Daemon {
    pub engine: Engine,
    /// Stops the production loop (it finishes the card in production first).
    pub shutdown: CancellationToken,
    /// Closes the API, once the engine has stopped.
    api_stop: CancellationToken,
    engine_task: tokio::task::JoinHandle<()>,
    api_task: tokio::task::JoinHandle<()>,
    /// The API's TCP listener, when `[api] tcp_listen` asks for one.
    tcp: Option<(std::net::SocketAddr, tokio::task::JoinHandle<()>)>,
    upstream: crate::upstream::service::Upstream,
    /// Kept alive while the daemon runs when `device = "sim"`.
    _sim: Option<crate::bundled_sim::Simulator>,
}

impl Daemon {
    /// Starts everything. `printer` overrides the configured device (the demo
    /// passes the simulator it drives).
    pub async fn start(config: Config, printer: Option<Endpoint>) -> Result<Daemon, String> {
        // What would fail later, on a customer's card, fails here.
        let profile = Arc::new(
            Profile::load(
                &config.printer.model,
                config.printer.hardware_dir.as_deref(),
            )
            .map_err(|e| e.to_string())?,
        );
        config.check_card_types(&profile)?;
        warn_card_types(&config, &profile);
        check_store_dir(&config.store.path)?;
        let api = ApiAccess::prepare(&config)?;
        let keys = match (&config.store.key_file, &config.store.key_credential) {
            (Some(path), None) => Keys::load(path),
            (None, Some(name)) => Keys::from_credential(name),
            _ => unreachable!("checked when the configuration was read"),
        }
        .map_err(|e| format!("card-data key: {e}"))?;
        let store = Store::open(&config.store.path, keys)
            .map_err(|e| format!("store {}: {e}", config.store.path.display()))?;
        let (endpoint, sim) = match (printer, config.printer.device.as_str()) {
            (Some(e), _) => (e, None),
            (None, "sim") => {
                // A build without the simulator refused "sim" with the
                // configuration already; `start_pty` refuses it again here.
                let (path, sim) =
                    crate::bundled_sim::start_pty(&profile.model.id, config.printer.sim_speed)
                        .await
                        .map_err(|e| format!("printer.device = \"sim\": {e}"))?;
                tracing::warn!(device = %path.display(), "printer: the bundled SIMULATOR (device = \"sim\"), not a real printer");
                (Endpoint::Serial(path), Some(sim))
            }
            (None, device) => (
                device
                    .parse::<Endpoint>()
                    .map_err(|e| format!("printer.device: {e}"))?,
                None,
            ),
        };
        let settings = link_settings(&config, endpoint, &profile);
        let last_serial = store.meta("printer_serial").ok().flatten();
        let expected = last_serial.map(|serial| crate::printer::Identity {
            model: profile.model.model_reply.clone(),
            serial,
            firmware: String::new(),
        });
        let printer = Printer::new(settings, profile, Backoff::default(), expected, true);
        printer.start_monitor();
        let chip = config
            .chip
            .enabled
            .then(|| PcscStation::new(config.chip.pcsc()));
        let socket = config.api.socket.clone();
        let engine = Engine::new(config, store, printer, chip);
        remember_serial(&engine);
        // Before the engine runs: deferred card data needs the central base.
        let upstream = crate::upstream::service::Upstream::start(&engine).await?;

        // TCP first: a port already taken then leaves no socket file behind.
        let tcp_listener = match api.tcp {
            Some((addr, token)) => {
                let l = api::listen::bind_tcp(addr).await?;
                let addr = l.local_addr().map_err(|e| format!("api.tcp_listen: {e}"))?;
                Some((l, addr, token))
            }
            None => None,
        };
        let listener = api::listen::bind_unix(&socket, api.group)?;
        let shutdown = CancellationToken::new();
        let api_stop = CancellationToken::new();
        let engine_task = tokio::spawn({
            let (engine, shutdown) = (engine.clone(), shutdown.clone());
            async move { engine.run(shutdown).await }
        });
        // The supplies forecast's marks and its warnings in the log.
        tokio::spawn(crate::engine::forecast_watch::watch(
            engine.clone(),
            shutdown.clone(),
        ));
        let header_read =
            std::time::Duration::from_millis(engine.config().api.header_read_timeout_ms);
        let api_task = tokio::spawn(api::serve(
            listener,
            api::router(engine.clone()),
            header_read,
            api_stop.clone(),
        ));
        let tcp = tcp_listener.map(|(l, addr, token)| {
            tracing::info!(address = %addr, "the local API also listens on TCP (bearer token required)");
            let app = api::tcp_router(engine.clone(), token);
            (
                addr,
                tokio::spawn(api::serve(l, app, header_read, api_stop.clone())),
            )
        });
        tracing::info!(socket = %socket.display(), kiosk = %engine.config().kiosk_id, "satellite is running");
        Ok(Daemon {
            engine,
            shutdown,
            api_stop,
            engine_task,
            api_task,
            tcp,
            upstream,
            _sim: sim,
        })
    }

    /// Waits until the engine or the API task ends on its own, which only
    /// happens when something is wrong (a panic, a listener that died): the
    /// daemon must then exit non-zero so that its service manager restarts
    /// it, rather than accept requests nothing would produce.
    pub async fn failed(&mut self) -> String {
        let tcp = async {
            match &mut self.tcp {
                Some((_, task)) => task.await,
                None => std::future::pending().await,
            }
        };
        let (which, r) = tokio::select! {
            r = &mut self.engine_task => ("production engine", r),
            r = &mut self.api_task => ("local API", r),
            r = tcp => ("local API's TCP listener", r),
        };
        match r {
            Ok(()) => format!("the {which} stopped unexpectedly"),
            Err(e) if e.is_panic() => {
                let why = e.into_panic();
                let why = why
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| why.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                format!("the {which} panicked: {why}")
            }
            Err(e) => format!("the {which} was cancelled: {e}"),
        }
    }

    /// The address the API's TCP listener took (its port, when the
    /// configuration said 0), if it has one.
    pub fn tcp_addr(&self) -> Option<std::net::SocketAddr> {
        self.tcp.as_ref().map(|(a, _)| *a)
    }

    /// Reads the configuration file again and applies it (SIGHUP): checked
    /// whole first (`supervision/reload.rs`); a refused one leaves the
    /// configuration in force as it was. Tells the service manager
    /// `RELOADING=1`, then `READY=1` either way (the agent runs on).
    pub async fn reload(&mut self, path: &Path) -> Result<(), String> {
        supervision::reloading();
        let planned = Config::load(path).and_then(|c| supervision::reload::plan(&self.engine, c));
        let result = match planned {
            Err(e) => {
                // The parser's message spans lines (it quotes the line at
                // fault): one log line is one event.
                let e = e
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect::<Vec<_>>()
                    .join(" / ");
                tracing::error!(config = %path.display(), error = %e, "configuration reload refused: the configuration in force stays");
                Err(e)
            }
            Ok(plan) => {
                let level = plan.config.log_level.clone();
                self.engine.reload(plan.config, plan.link);
                if let Err(e) = crate::logging::set_level(level.as_deref()) {
                    tracing::warn!(error = %e, "log_level not applied");
                }
                // The new sinks are registered before the old tasks stop: a
                // store that refuses them leaves the running tasks in place.
                if let Err(e) = self.upstream.replace(&self.engine, plan.upstream).await {
                    tracing::error!(error = %e, "upstream could not take the reloaded configuration: the previous upstream tasks keep running (reload again once the cause is fixed)");
                }
                let changed = if plan.changed.is_empty() {
                    "nothing".to_string()
                } else {
                    plan.changed.join(", ")
                };
                tracing::info!(config = %path.display(), changed = %changed, "configuration reloaded");
                Ok(())
            }
        };
        supervision::notify(&[NotifyState::Ready]);
        result
    }

    /// Stops: no new card starts, the card in production finishes (the API
    /// keeps serving meanwhile: status, final validation), then the API
    /// closes.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.engine_task.await;
        self.api_stop.cancel();
        let _ = self.api_task.await;
        if let Some((_, task)) = self.tcp {
            let _ = task.await;
        }
        // Status changes written until now are in the outbox: what is not
        // delivered now goes at the next start.
        self.upstream.stop().await;
        let _ = std::fs::remove_file(&self.engine.config().api.socket);
    }
}

/// Warns of card types the printer (or a chip station turned off) cannot
/// produce: their requests will be refused.
pub(crate) fn warn_card_types(config: &Config, profile: &Profile) {
    if config.card_types.is_empty() {
        tracing::warn!("the configuration has no [[card_type]]: every request will be refused (CARD_TYPE_NOT_FOUND)");
    }
    for t in &config.card_types {
        let mut missing = t.missing_capabilities(&profile.capabilities);
        if t.chip && profile.capabilities.smart_station && !config.chip.enabled {
            missing.push("the chip station, which [chip] enabled = false turns off");
        }
        if !missing.is_empty() {
            tracing::warn!(card_type = %t.id, printer = %profile.model.id, "card type {} needs {}: its requests will be refused", t.id, missing.join(" and "));
        }
    }
}

pub(crate) fn link_settings(
    config: &Config,
    endpoint: Endpoint,
    profile: &Profile,
) -> LinkSettings {
    let p = &config.printer;
    let mut s = LinkSettings::from_profile(endpoint, profile);
    s.ack_nack = p.ack_nack;
    if let Some(ms) = p.idle_probe_ms {
        s.idle_probe = std::time::Duration::from_millis(ms);
    }
    s.serial.baud = p.baud.unwrap_or(s.serial.baud);
    s.serial.parity = p.parity.unwrap_or(s.serial.parity);
    s.serial.data_bits = p.data_bits.unwrap_or(s.serial.data_bits);
    s.serial.stop_bits = p.stop_bits.unwrap_or(s.serial.stop_bits);
    s.serial.flow_control = p.flow_control.unwrap_or(s.serial.flow_control);
    let o = &p.timeouts;
    let t = &mut s.timeouts;
    for (slot, over) in [
        (&mut t.command, o.command),
        (&mut t.movement, o.movement),
        (&mut t.magnetic, o.magnetic),
        (&mut t.print, o.print),
        (&mut t.emboss, o.emboss),
        (&mut t.maintenance, o.maintenance),
        (&mut t.take, o.take),
    ] {
        if let Some(v) = over {
            *slot = v;
        }
    }
    s
}

/// Keeps the printer's serial number in the store, so that a printer swapped
/// while the agent was down is reported as an identity change too. Follows
/// the link a reload puts in place.
fn remember_serial(engine: &Engine) {
    let engine = engine.clone();
    tokio::spawn(async move {
        let mut printers = engine.printer_changes();
        loop {
            let mut status = printers.borrow_and_update().status();
            loop {
                tokio::select! {
                    r = status.changed() => {
                        if r.is_err() {
                            // This link is gone: wait for its successor.
                            if printers.changed().await.is_err() {
                                return;
                            }
                            break;
                        }
                        let serial = match &status.borrow().state {
                            crate::printer::LinkState::Connected { identity } => Some(identity.serial.clone()),
                            _ => None,
                        };
                        if let Some(serial) = serial {
                            let _ = engine.remember("printer_serial", serial).await;
                        }
                    }
                    r = printers.changed() => {
                        if r.is_err() {
                            return;
                        }
                        break;
                    }
                }
            }
        }
    });
}

/// The store's directory is the operator's (systemd's `StateDirectory=`):
/// the agent does not create it, so that a mistyped path is not a new, empty
/// store in a place nobody backs up.
fn check_store_dir(db: &Path) -> Result<(), String> {
    let dir = match db.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if dir.is_dir() {
        return Ok(());
    }
    Err(format!(
        "store.path: the store directory {} does not exist (or is not a directory); create it (systemd: StateDirectory=), the agent does not",
        dir.display()
    ))
}

/// Who may use the local API, settled before anything starts: the socket's
/// group must exist, and the TCP listener's token must be readable and
/// strong, or the agent does not start.
struct ApiAccess {
    group: Option<nix::unistd::Gid>,
    tcp: Option<(std::net::SocketAddr, api::auth::Token)>,
}

impl ApiAccess {
    fn prepare(config: &Config) -> Result<ApiAccess, String> {
        let group = config
            .api
            .socket_group
            .as_deref()
            .map(api::listen::socket_group)
            .transpose()?;
        let tcp = match (config.api.tcp_addr()?, config.api.token_source()?) {
            (Some(addr), Some(source)) => {
                let text = source.read().map_err(|e| format!("api token: {e}"))?;
                let token = api::auth::Token::new(&text).map_err(|e| format!("api token: {e}"))?;
                Some((addr, token))
            }
            (Some(_), None) => unreachable!("checked when the configuration was read"),
            (None, Some(_)) => {
                tracing::warn!("api.token_file or api.token_credential is set without api.tcp_listen: the token is not used");
                None
            }
            (None, None) => None,
        };
        Ok(ApiAccess { group, tcp })
    }
}

/// `satellite run --config FILE`.
pub async fn run(config_path: &Path) -> Result<(), String> {
    use tokio::signal::unix::{signal, SignalKind};
    // Before READY=1: a stop or reload that follows it at once must find
    // the handlers in place, not the default action (which kills).
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut hup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let config = Config::load(config_path)?;
    crate::logging::set_level(config.log_level.as_deref())?;
    let mut daemon = Daemon::start(config, None).await?;
    // The store is open and the API listens: ready, even if the printer
    // is not (that is a state the API and STATUS= report, not a failure).
    supervision::notify(&[NotifyState::Ready]);
    let stopping = CancellationToken::new();
    let tasks_stop = CancellationToken::new();
    tokio::spawn(supervision::status::run(
        daemon.engine.clone(),
        stopping.clone(),
        tasks_stop.clone(),
    ));
    if let Some(every) = supervision::watchdog::interval() {
        tracing::info!(
            interval_ms = every.as_millis() as u64,
            "systemd watchdog: pinged while the production loop moves"
        );
        tokio::spawn(supervision::watchdog::run(
            daemon.engine.clone(),
            every,
            tasks_stop.clone(),
        ));
    }
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                tracing::info!(config = %config_path.display(), "SIGHUP: reloading the configuration");
                let _ = daemon.reload(config_path).await;
            }
            why = daemon.failed() => {
                tracing::error!(error = %why, "exiting so that the service manager restarts the agent");
                supervision::notify(&[NotifyState::Stopping]);
                daemon.shutdown.cancel();
                let _ = std::fs::remove_file(&daemon.engine.config().api.socket);
                return Err(why);
            }
        }
    }
    supervision::notify(&[NotifyState::Stopping]);
    stopping.cancel();
    match daemon.engine.card_time_left() {
        Some(left) => tracing::info!(at_most_s = left.as_secs() + 1, "stopping: the card in production is finished first (the API serves until it is decided)"),
        None => tracing::info!("stopping: no card in production"),
    }
    daemon.stop().await;
    tasks_stop.cancel();
    Ok(())
}
