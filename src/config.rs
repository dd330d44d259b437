//! The daemon's configuration file (TOML). Unknown keys are refused and every
//! error names the key, so a typo never silently falls back to a default.

use crate::chip::PcscConfig;
use crate::printer::profile::{FlowControl, Parity};
use crate::printer::Profile;
use crate::request::CardType;
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This kiosk's identifier, as the platform knows it (`kioskId`).
    pub kiosk_id: String,
    pub printer: PrinterConfig,
    #[serde(default)]
    pub chip: ChipConfig,
    pub store: StoreConfig,
    pub api: ApiConfig,
    #[serde(default)]
    pub production: ProductionConfig,
    /// When a supply raises its warning, ahead of production stopping.
    #[serde(default)]
    pub supplies: SuppliesConfig,
    /// The card types this kiosk produces.
    #[serde(rename = "card_type", default)]
    pub card_types: Vec<CardType>,
    #[serde(default)]
    pub upstream: crate::upstream::UpstreamConfig,
    /// The log level, as `RUST_LOG` spells it (`info`,
    /// `warn,satellite=debug`); `RUST_LOG` wins when set. A reload changes it.
    pub log_level: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PrinterConfig {
    /// `/dev/ttyS0`, `usb:///dev/usb/lp0`, `tcp://host:port`, or `sim` for the
    /// bundled simulator (demonstrations and tests only).
    pub device: String,
    /// Profile id or path.
    pub model: String,
    pub hardware_dir: Option<PathBuf>,
    #[serde(default)]
    pub ack_nack: bool,
    pub baud: Option<u32>,
    pub parity: Option<Parity>,
    pub data_bits: Option<u8>,
    pub stop_bits: Option<u8>,
    pub flow_control: Option<FlowControl>,
    /// Time-out overrides in milliseconds, by the profile's names.
    #[serde(default)]
    pub timeouts: TimeoutOverrides,
    /// The simulator's speed factor when `device = "sim"` (0: no delays).
    #[serde(default)]
    pub sim_speed: f64,
    /// How often an idle printer is asked for its status, in milliseconds
    /// (1000 unless given): the longest a fault raised while idle takes to
    /// show, and two wake-ups of the agent per probe.
    pub idle_probe_ms: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TimeoutOverrides {
    pub command: Option<u64>,
    #[serde(rename = "move")]
    pub movement: Option<u64>,
    pub magnetic: Option<u64>,
    pub print: Option<u64>,
    pub emboss: Option<u64>,
    pub maintenance: Option<u64>,
    /// How long the customer has to take a presented card.
    pub take: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ChipConfig {
    /// Personalise chips through PC/SC (off: card types with a chip are refused).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Part of the reader's name; the first reader otherwise.
    pub reader: Option<String>,
    #[serde(default = "card_wait_ms")]
    pub card_wait_ms: u64,
    #[serde(default = "apdu_timeout_ms")]
    pub apdu_timeout_ms: u64,
}

fn card_wait_ms() -> u64 {
    PcscConfig::default().card_wait_ms
}

fn apdu_timeout_ms() -> u64 {
    PcscConfig::default().apdu_timeout_ms
}

impl ChipConfig {
    pub fn pcsc(&self) -> PcscConfig {
        PcscConfig {
            reader: self.reader.clone(),
            card_wait_ms: self.card_wait_ms,
            apdu_timeout_ms: self.apdu_timeout_ms,
        }
    }
}

impl Default for ChipConfig {
    fn default() -> Self {
        let p = PcscConfig::default();
        ChipConfig {
            enabled: true,
            reader: None,
            card_wait_ms: p.card_wait_ms,
            apdu_timeout_ms: p.apdu_timeout_ms,
        }
    }
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// The SQLite database.
    pub path: PathBuf,
    /// The card-data key: a file, or a systemd credential name.
    pub key_file: Option<PathBuf>,
    pub key_credential: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// The local API's Unix socket.
    pub socket: PathBuf,
    /// The group that may use the socket (mode 0660, this group); without
    /// one, the socket is the agent's user's alone (mode 0600).
    pub socket_group: Option<String>,
    /// A TCP listener for the same API, on a loopback address only
    /// (`127.0.0.1:PORT`, `[::1]:PORT`); every request on it needs the bearer
    /// token of `token_file` or `token_credential`.
    pub tcp_listen: Option<String>,
    pub token_file: Option<PathBuf>,
    pub token_credential: Option<String>,
    /// How long a connection may take to send a request's head, from when
    /// the agent starts waiting for it (also how long an idle connection
    /// stays open); then it is closed.
    #[serde(default = "header_read_timeout_ms")]
    pub header_read_timeout_ms: u64,
    /// How long a request's whole body may take once its head is in; then
    /// the agent answers 408 and closes the connection.
    #[serde(default = "body_read_timeout_ms")]
    pub body_read_timeout_ms: u64,
}

fn header_read_timeout_ms() -> u64 {
    10_000
}

impl ApiConfig {
    /// The TCP listener's address, when there is one: an IP address and
    /// port on loopback. Anything else is refused: the TCP listener is for
    /// programs on this machine that cannot use a Unix socket, and a bearer
    /// token over plain HTTP must not cross a network.
    pub fn tcp_addr(&self) -> Result<Option<std::net::SocketAddr>, String> {
        let Some(text) = &self.tcp_listen else {
            return Ok(None);
        };
        let addr: std::net::SocketAddr = text.trim().parse().map_err(|_| {
            format!(
                "api.tcp_listen = {text:?}: not an IP address and port; give a loopback address such as \"127.0.0.1:7070\" or \"[::1]:7070\""
            )
        })?;
        if !addr.ip().is_loopback() {
            return Err(format!(
                "api.tcp_listen = {text:?}: {} is not a loopback address; the TCP listener serves this machine only (127.0.0.0/8 or ::1), since its bearer token travels unencrypted",
                addr.ip()
            ));
        }
        Ok(Some(addr))
    }

    /// Where the TCP listener's bearer token is read from.
    pub fn token_source(&self) -> Result<Option<crate::upstream::secret::SecretSource>, String> {
        crate::upstream::secret::SecretSource::from_keys(
            "api.token",
            self.token_file.as_ref(),
            self.token_credential.as_ref(),
        )
    }

    fn check(&self) -> Result<(), String> {
        let tcp = self.tcp_addr()?;
        let token = self.token_source()?;
        if tcp.is_some() && token.is_none() {
            return Err(
                "api.tcp_listen needs a bearer token: set api.token_file (a file of mode 0600) or api.token_credential (a systemd credential)".into(),
            );
        }
        if matches!(&self.socket_group, Some(g) if g.trim().is_empty()) {
            return Err("api.socket_group is empty: name a group, or leave the key out".into());
        }
        Ok(())
    }
}

fn body_read_timeout_ms() -> u64 {
    30_000
}

/// What to do with a request while the printer cannot produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum NotReady {
    /// Accept it (READY) and say so with REQUEST_CREATED_BUT_NOT_STARTED; it
    /// starts when the printer is ready again.
    #[default]
    Queue,
    /// Refuse it with PRINTER_OR_SATELLITE_NOT_READY; nothing is stored.
    Reject,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductionConfig {
    /// Requests waiting at most; more are refused (UNABLE_TO_ACCEPT_REQUEST).
    #[serde(default = "queue_limit")]
    pub queue_limit: usize,
    /// Wait for the kiosk application's verdict on a presented card.
    #[serde(default)]
    pub final_validation: bool,
    #[serde(default)]
    pub not_ready: NotReady,
}

fn queue_limit() -> usize {
    50
}

impl Default for ProductionConfig {
    fn default() -> Self {
        ProductionConfig {
            queue_limit: queue_limit(),
            final_validation: false,
            not_ready: NotReady::Queue,
        }
    }
}

/// The supplies forecast: at or below each threshold a supply raises its
/// warning (status, doctor, metrics, heartbeat, one log line), ahead of
/// production stopping. Reloadable (SIGHUP): the next forecast uses it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuppliesConfig {
    /// Cards' worth of ribbon left.
    #[serde(default = "ribbon_warn_cards")]
    pub ribbon_warn_cards: u64,
    /// Blank cards left in a feeder.
    #[serde(default = "feeder_warn_cards")]
    pub feeder_warn_cards: u64,
    /// Free slots left in the reject box.
    #[serde(default = "reject_warn_free")]
    pub reject_warn_free: u64,
    /// Cards left before the printer requires cleaning.
    #[serde(default = "cleaning_warn_cards")]
    pub cleaning_warn_cards: u64,
    /// The recent production rate (hours left) is counted over this many hours.
    #[serde(default = "rate_window_hours")]
    pub rate_window_hours: u32,
}

fn ribbon_warn_cards() -> u64 {
    50
}
fn feeder_warn_cards() -> u64 {
    20
}
fn reject_warn_free() -> u64 {
    3
}
fn cleaning_warn_cards() -> u64 {
    50
}
fn rate_window_hours() -> u32 {
    6
}

impl Default for SuppliesConfig {
    fn default() -> Self {
        SuppliesConfig {
            ribbon_warn_cards: ribbon_warn_cards(),
            feeder_warn_cards: feeder_warn_cards(),
            reject_warn_free: reject_warn_free(),
            cleaning_warn_cards: cleaning_warn_cards(),
            rate_window_hours: rate_window_hours(),
        }
    }
}

impl SuppliesConfig {
    fn check(&self) -> Result<(), String> {
        // A threshold beyond any real supply is a typo (a ribbon holds at
        // most a few thousand cards), and would keep the warning on for ever.
        const MAX_CARDS: u64 = 100_000;
        for (key, v) in [
            ("supplies.ribbon_warn_cards", self.ribbon_warn_cards),
            ("supplies.feeder_warn_cards", self.feeder_warn_cards),
            ("supplies.reject_warn_free", self.reject_warn_free),
            ("supplies.cleaning_warn_cards", self.cleaning_warn_cards),
        ] {
            if v > MAX_CARDS {
                return Err(format!(
                    "{key} = {v}: at most {MAX_CARDS} (0 warns only when the supply is exhausted)"
                ));
            }
        }
        if !(1..=168).contains(&self.rate_window_hours) {
            return Err(format!(
                "supplies.rate_window_hours = {}: between 1 and 168 (a week)",
                self.rate_window_hours
            ));
        }
        Ok(())
    }
}

impl Config {
    /// A kiosk in one directory (store, key, socket), on the bundled simulator,
    /// without chip, with one magnetic card type `debit`: what the demo, the
    /// benchmark and the tests start from, adjusting fields as they need.
    pub fn local(dir: &Path, kiosk_id: &str) -> Config {
        Config::parse(&Config::local_text(dir, kiosk_id, "sim"))
            .expect("the local configuration is valid")
    }

    /// The text of [`Config::local`] with the printer at `device`: for a
    /// configuration file a child process or a command reads.
    pub fn local_text(dir: &Path, kiosk_id: &str, device: &str) -> String {
        format!(
            r#"
kiosk_id = "{kiosk_id}"
[printer]
device = "{device}"
model = "evolis-km500b"
[chip]
enabled = false
[store]
path = "{db}"
key_file = "{key}"
[api]
socket = "{socket}"
[[card_type]]
id = "debit"
magnetic = true
chip = false
emboss = false
colour = false
"#,
            db = dir.join("satellite.db").display(),
            key = dir.join("card.key").display(),
            socket = dir.join("api.sock").display(),
        )
    }

    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Config::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The configuration from text (what `load` reads from the file).
    pub fn parse(text: &str) -> Result<Config, String> {
        let c: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        c.check()?;
        Ok(c)
    }

    /// Checks the card types against the printer's profile (its panel
    /// geometry): a layout that does not fit would fail on a customer's card,
    /// so it fails at start-up instead, naming the card type and what.
    pub fn check_card_types(&self, profile: &Profile) -> Result<(), String> {
        crate::request::check_card_types(&self.card_types, profile.geometry).map_err(|e| {
            format!(
                "[[card_type]] does not fit the printer {} ({}): {e}",
                profile.model.id, profile.model.name
            )
        })
    }

    fn check(&self) -> Result<(), String> {
        if self.kiosk_id.trim().is_empty() {
            return Err("kiosk_id is empty".into());
        }
        if let Some(level) = &self.log_level {
            crate::logging::parse_level(level)?;
        }
        self.upstream.check()?;
        if let Some(d1) = &self.upstream.d1 {
            if d1.production_site.is_none() {
                crate::upstream::config::check_d1_site(
                    "kiosk_id (D1's production site unless upstream.d1.production_site is set)",
                    &self.kiosk_id,
                )?;
            }
        }
        match (&self.store.key_file, &self.store.key_credential) {
            (None, None) => {
                return Err("store: give key_file or key_credential (the card-data key)".into())
            }
            (Some(_), Some(_)) => {
                return Err("store: set one of key_file or key_credential, not both".into())
            }
            _ => {}
        }
        self.api.check()?;
        if self.api.header_read_timeout_ms == 0 || self.api.body_read_timeout_ms == 0 {
            return Err(
                "api: header_read_timeout_ms and body_read_timeout_ms must be at least 1".into(),
            );
        }
        if self.printer.device == "sim" && !cfg!(feature = "simulator") {
            return Err(format!(
                "printer.device = \"sim\": {}; set printer.device to the printer's device",
                crate::bundled_sim::NO_SIMULATOR
            ));
        }
        if let Some(v) = self.printer.idle_probe_ms {
            if !(200..=60_000).contains(&v) {
                return Err(format!(
                    "printer.idle_probe_ms = {v}: between 200 (a probe every 0.2 s) and 60000 (one a minute)"
                ));
            }
        }
        // A time-out is at most a day: larger ones are typos, and would
        // overflow the clock arithmetic.
        const DAY_MS: u64 = 24 * 3600 * 1000;
        let t = &self.printer.timeouts;
        for (key, v) in [
            ("printer.timeouts.take", t.take),
            ("printer.timeouts.command", t.command),
            ("printer.timeouts.move", t.movement),
            ("printer.timeouts.magnetic", t.magnetic),
            ("printer.timeouts.print", t.print),
            ("printer.timeouts.emboss", t.emboss),
            ("printer.timeouts.maintenance", t.maintenance),
            ("chip.card_wait_ms", Some(self.chip.card_wait_ms)),
            ("chip.apdu_timeout_ms", Some(self.chip.apdu_timeout_ms)),
            (
                "api.header_read_timeout_ms",
                Some(self.api.header_read_timeout_ms),
            ),
            (
                "api.body_read_timeout_ms",
                Some(self.api.body_read_timeout_ms),
            ),
        ] {
            if let Some(v) = v.filter(|v| *v > DAY_MS) {
                return Err(format!("{key} = {v} ms: at most {DAY_MS} ms (a day)"));
            }
        }
        self.supplies.check()?;
        if self.production.queue_limit == 0 {
            return Err("production.queue_limit must be at least 1".into());
        }
        let mut ids = std::collections::BTreeSet::new();
        for t in &self.card_types {
            if !ids.insert(t.id.clone()) {
                return Err(format!("card_type {:?} is defined twice", t.id));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_probe_ms_is_checked() {
        let base = Config::local_text(std::path::Path::new("/tmp/x"), "K1", "sim");
        for (v, ok) in [
            (199, false),
            (200, true),
            (1000, true),
            (60_000, true),
            (60_001, false),
        ] {
            let text = base.replacen(
                "[printer]\n",
                &format!("[printer]\nidle_probe_ms = {v}\n"),
                1,
            );
            assert!(text.contains("idle_probe_ms"), "{text}");
            let r = Config::parse(&text);
            assert_eq!(r.is_ok(), ok, "idle_probe_ms = {v}: {:?}", r.err());
            if let Err(e) = r {
                assert!(e.to_string().contains("printer.idle_probe_ms"), "{e}");
            }
        }
    }

    #[test]
    fn the_example_configuration_parses() {
        let c = Config::parse(include_str!("../docs/satellite.example.toml")).unwrap();
        assert_eq!(c.kiosk_id, "WIS00001");
        assert_eq!(c.printer.timeouts.take, Some(15000));
        assert_eq!(c.card_types.len(), 1);
        assert_eq!(c.production.not_ready, NotReady::Queue);
        assert_eq!(
            (c.api.header_read_timeout_ms, c.api.body_read_timeout_ms),
            (10_000, 30_000)
        );
    }

    #[test]
    fn supplies_thresholds_have_defaults_and_are_checked() {
        let base = Config::local_text(Path::new("/tmp/x"), "K1", "sim");
        let c = Config::parse(&base).unwrap();
        assert_eq!(c.supplies, SuppliesConfig::default());
        for (table, ok, needle) in [
            ("[supplies]\nribbon_warn_cards = 10\n", true, ""),
            (
                "[supplies]\nrate_window_hours = 0\n",
                false,
                "supplies.rate_window_hours",
            ),
            (
                "[supplies]\nrate_window_hours = 169\n",
                false,
                "supplies.rate_window_hours",
            ),
            (
                "[supplies]\nfeeder_warn_cards = 100001\n",
                false,
                "supplies.feeder_warn_cards",
            ),
            (
                "[supplies]\nribon_warn_cards = 1\n",
                false,
                "ribon_warn_cards",
            ),
        ] {
            let r = Config::parse(&format!("{base}{table}"));
            assert_eq!(r.is_ok(), ok, "{table}: {r:?}");
            if let Err(e) = r {
                assert!(e.contains(needle), "{needle}: {e}");
            }
        }
    }

    #[test]
    fn api_time_outs_have_defaults() {
        let c = Config::local(Path::new("/tmp/x"), "K1");
        assert_eq!(
            (c.api.header_read_timeout_ms, c.api.body_read_timeout_ms),
            (10_000, 30_000)
        );
    }

    #[test]
    fn card_types_are_checked_against_the_printer_profile() {
        let mut c = Config::local(Path::new("/tmp/x"), "K1");
        let profile = Profile::load("evolis-km500b", None).unwrap();
        assert_eq!(c.check_card_types(&profile), Ok(()));
        c.card_types[0].layout.lines.y = 640;
        let e = c.check_card_types(&profile).unwrap_err();
        for needle in [
            "card type debit",
            "layout.lines",
            "does not fit",
            "evolis-km500b",
        ] {
            assert!(e.contains(needle), "{needle}: {e}");
        }
    }

    #[test]
    fn a_kiosk_id_too_long_for_d1_needs_a_production_site() {
        // The example without its upstream part (which names D1).
        let full = include_str!("../docs/satellite.example.toml");
        let base = &full[..full
            .find("\n[upstream]")
            .expect("the example has [upstream]")];
        let long = "K".repeat(51);
        let d1 = "\n[upstream.d1]\nurl = \"https://d1.example.com/\"\nissuer_id = \"B\"\n\
                  [upstream.d1.auth]\ntoken_url = \"https://d1.example.com/t\"\n\
                  client_id = \"x\"\nclient_secret_file = \"/s\"\n";
        let text = base.replace("kiosk_id = \"WIS00001\"", &format!("kiosk_id = \"{long}\""));
        // Without D1 the id is not told to D1.
        assert!(Config::parse(&text).is_ok());
        let e = Config::parse(&format!("{text}{d1}")).unwrap_err();
        assert!(e.contains("kiosk_id") && e.contains("51 characters"), "{e}");
        let site = d1.replace("issuer_id", "production_site = \"KIOSK-1\"\nissuer_id");
        assert!(Config::parse(&format!("{text}{site}")).is_ok());
    }

    #[test]
    fn mistakes_are_named() {
        let base = include_str!("../docs/satellite.example.toml");
        for (text, needle) in [
            (
                base.replace("kiosk_id = \"WIS00001\"", "kiosk_id = \"\""),
                "kiosk_id",
            ),
            (
                base.replace("queue_limit = 50", "queue_limt = 50"),
                "queue_limt",
            ),
            (
                base.replace("key_file = \"/etc/satellite/card.key\"", ""),
                "key_file",
            ),
            (
                base.replace("not_ready = \"queue\"", "not_ready = \"later\""),
                "later",
            ),
            (
                base.replace("card_wait_ms = 3000", "card_wait_ms = \"soon\""),
                "card_wait_ms",
            ),
            (
                base.replace(
                    "# key_credential = \"satellite-card-key\"",
                    "key_credential = \"satellite-card-key\"",
                ),
                "set one of key_file or key_credential, not both",
            ),
            (
                base.replace(
                    "header_read_timeout_ms = 10000",
                    "header_read_timeout_ms = 0",
                ),
                "header_read_timeout_ms",
            ),
            (
                base.replace("body_read_timeout_ms = 30000", "body_read_timeout_ms = -1"),
                "body_read_timeout_ms",
            ),
        ] {
            let e = Config::parse(&text).unwrap_err();
            assert!(e.contains(needle), "{needle}: {e}");
        }
    }

    #[test]
    fn the_tcp_listener_is_loopback_only_and_needs_a_token() {
        let base = include_str!("../docs/satellite.example.toml");
        let with = |extra: &str| {
            let text = base.replace(
                "socket = \"/run/satellite/api.sock\"",
                &format!("socket = \"/run/satellite/api.sock\"\n{extra}"),
            );
            assert_ne!(text, base, "the example names the socket");
            Config::parse(&text)
        };
        let token = "token_file = \"/etc/satellite/api.token\"";
        for ok in ["127.0.0.1:7070", "127.0.0.2:0", "[::1]:7070"] {
            let c = with(&format!("tcp_listen = \"{ok}\"\n{token}")).unwrap();
            assert!(c.api.tcp_addr().unwrap().is_some(), "{ok}");
        }
        for (listen, needle) in [
            ("0.0.0.0:7070", "0.0.0.0 is not a loopback address"),
            (
                "192.168.1.10:7070",
                "192.168.1.10 is not a loopback address",
            ),
            ("[::]:7070", ":: is not a loopback address"),
            ("localhost:7070", "not an IP address and port"),
            ("127.0.0.1", "not an IP address and port"),
        ] {
            let e = with(&format!("tcp_listen = \"{listen}\"\n{token}")).unwrap_err();
            assert!(
                e.contains("api.tcp_listen") && e.contains(needle),
                "{listen}: {e}"
            );
        }
        let e = with("tcp_listen = \"127.0.0.1:7070\"").unwrap_err();
        assert!(e.contains("needs a bearer token"), "{e}");
        let e = with(&format!(
            "tcp_listen = \"127.0.0.1:7070\"\n{token}\ntoken_credential = \"t\""
        ))
        .unwrap_err();
        assert!(e.contains("api.token_file or api.token_credential"), "{e}");
        let e = with("socket_group = \"\"").unwrap_err();
        assert!(e.contains("api.socket_group"), "{e}");
        // None of it is needed.
        let c = with("").unwrap();
        assert_eq!((c.api.tcp_addr(), c.api.socket_group), (Ok(None), None));
    }

    #[test]
    fn the_simulator_device_needs_the_simulator_feature() {
        let base = include_str!("../docs/satellite.example.toml");
        let text = base.replace("device = \"/dev/ttyS0\"", "device = \"sim\"");
        assert_ne!(text, base, "the example names /dev/ttyS0");
        let parsed = Config::parse(&text);
        if cfg!(feature = "simulator") {
            assert_eq!(parsed.unwrap().printer.device, "sim");
        } else {
            assert_eq!(
                parsed.unwrap_err(),
                "printer.device = \"sim\": this build has no bundled simulator: it was built \
                 without the `simulator` feature; set printer.device to the printer's device"
            );
        }
    }
}
