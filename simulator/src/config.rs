//! Simulator configuration: the profile plus everything a test or the command
//! line may set. Fields are public so a test builds its printer with plain
//! assignments after `SimConfig::for_model`.

use crate::profile::{Profile, ProfileError};
use crate::scenario::Scenario;
use dialect::Terminator;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// What the customer at the kiosk does with a presented card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Customer {
    /// Takes it this many ms after it is presented. Not scaled by `speed`:
    /// it is a person, not a mechanism.
    TakeAfter(u64),
    /// Walks away: the card waits in the bezel until the agent retracts it.
    Never,
    /// Rejects the card at the kiosk's final-validation prompt: the card is not
    /// taken and the state shows `customer_verdict: "refused"`.
    Refuse,
}

impl Default for Customer {
    fn default() -> Self {
        Customer::TakeAfter(0)
    }
}

impl FromStr for Customer {
    type Err = String;
    /// `take`, `take:MS`, `never` or `refuse`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "take" => Ok(Customer::TakeAfter(0)),
            "never" => Ok(Customer::Never),
            "refuse" => Ok(Customer::Refuse),
            other => match other.strip_prefix("take:") {
                Some(ms) => ms
                    .parse()
                    .map(Customer::TakeAfter)
                    .map_err(|_| format!("customer: {ms:?} is not a number of ms")),
                None => Err(format!(
                    "customer {other:?}: expected take:MS, never or refuse"
                )),
            },
        }
    }
}

impl fmt::Display for Customer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Customer::TakeAfter(ms) => write!(f, "take:{ms}"),
            Customer::Never => f.write_str("never"),
            Customer::Refuse => f.write_str("refuse"),
        }
    }
}

/// One input feeder.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FeederConfig {
    pub card_type: String,
    pub count: u32,
}

impl FeederConfig {
    pub fn new(card_type: &str, count: u32) -> Self {
        FeederConfig {
            card_type: card_type.to_string(),
            count,
        }
    }
}

/// Parses `type:count,type:count` (a bare count keeps the default card type).
pub fn parse_feeders(s: &str) -> Result<Vec<FeederConfig>, String> {
    let mut out = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (t, c) = match item.rsplit_once(':') {
            Some((t, c)) => (t.trim(), c.trim()),
            None => (DEFAULT_CARD_TYPE, item),
        };
        let count = c
            .parse()
            .map_err(|_| format!("feeder {item:?}: {c:?} is not a card count"))?;
        if t.is_empty() {
            return Err(format!("feeder {item:?}: empty card type"));
        }
        out.push(FeederConfig::new(t, count));
    }
    if out.is_empty() || out.len() > 4 {
        return Err(format!(
            "--feeders {s:?}: give 1 to 4 feeders as type:count"
        ));
    }
    Ok(out)
}

pub const DEFAULT_CARD_TYPE: &str = "blank";
pub const DEFAULT_FEEDER_COUNT: u32 = 100;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Profile(#[from] ProfileError),
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub profile: Profile,
    /// Physical time factor: 0 no delays (CI), 1 realistic.
    pub speed: f64,
    /// What `Rsn` answers.
    pub serial: String,
    /// What `Rfv` answers.
    pub firmware: String,
    /// What `Rkn` (head kit number) answers.
    pub kit_number: String,
    /// What `Rck` (firmware checksum) answers.
    pub firmware_checksum: String,
    /// One entry per feeder of the profile; missing entries take the defaults,
    /// extra entries are ignored.
    pub feeders: Vec<FeederConfig>,
    /// Output hopper (bezel-less delivery and test cards).
    pub hopper_capacity: u32,
    pub reject_capacity: u32,
    pub customer: Customer,
    pub reply_terminator: Terminator,
    /// ACK and NACK replies are followed by the reply terminator, as a USB
    /// printer node may send them (replies there are read up to a NUL).
    pub ack_terminated: bool,
    /// The vpcd socket of pcscd's virtual reader: the chip is played there.
    pub vpcd: Option<SocketAddr>,
    /// Transcript file (JSON lines, redacted).
    pub record: Option<PathBuf>,
    pub scenario: Option<Scenario>,
    /// Ribbon loaded at start (`Pr` changes the type, not the panels left).
    pub ribbon_type: String,
    /// Cards' worth of panels on the ribbon at start.
    pub ribbon_cards: u32,
    /// A feeder at or below this count is near empty.
    pub near_empty: u32,
    /// Cards between cleanings: recommended at this count, required at twice it.
    pub cleaning_interval: u32,
}

impl SimConfig {
    /// A configuration for one of the embedded profiles (`evolis-km500b`,
    /// `evolis-km500b-older`, `instant-embosser-ie4`).
    pub fn for_model(id: &str) -> Result<SimConfig, ConfigError> {
        Ok(SimConfig::for_profile(Profile::embedded(id)?))
    }

    /// A configuration for a profile file (its `extends` is resolved next to
    /// it, then among the embedded profiles).
    pub fn from_profile_path(path: &Path) -> Result<SimConfig, ConfigError> {
        Ok(SimConfig::for_profile(Profile::from_path(path)?))
    }

    pub fn for_profile(profile: Profile) -> SimConfig {
        let feeders = (0..profile.feeders)
            .map(|_| FeederConfig::new(DEFAULT_CARD_TYPE, DEFAULT_FEEDER_COUNT))
            .collect();
        let ribbon_type = profile
            .ribbons
            .first()
            .cloned()
            .unwrap_or_else(|| "ymcko".into());
        SimConfig {
            profile,
            speed: 1.0,
            serial: "SIM000001".into(),
            firmware: format!("SIM-{}", env!("CARGO_PKG_VERSION")),
            kit_number: "KIT-SIM-0001".into(),
            firmware_checksum: "5A3C".into(),
            feeders,
            hopper_capacity: 100,
            reject_capacity: 20,
            customer: Customer::default(),
            reply_terminator: Terminator::Cr,
            ack_terminated: false,
            vpcd: None,
            record: None,
            scenario: None,
            ribbon_type,
            ribbon_cards: 500,
            near_empty: 10,
            cleaning_interval: 1000,
        }
    }

    /// Scales a physical duration (ms at speed 1) by `speed`.
    pub fn scaled(&self, ms: u64) -> u64 {
        if !self.speed.is_finite() || self.speed <= 0.0 {
            return 0;
        }
        (ms as f64 * self.speed).round().min(u64::MAX as f64 / 2.0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_and_feeders_parse() {
        assert_eq!(
            "take:1500".parse::<Customer>().unwrap(),
            Customer::TakeAfter(1500)
        );
        assert_eq!("refuse".parse::<Customer>().unwrap().to_string(), "refuse");
        assert!("maybe".parse::<Customer>().is_err());
        let f = parse_feeders("visa:5, mc:0").unwrap();
        assert_eq!(
            f,
            vec![FeederConfig::new("visa", 5), FeederConfig::new("mc", 0)]
        );
        assert!(parse_feeders("visa:x").is_err());
        assert!(parse_feeders("a:1,b:1,c:1,d:1,e:1").is_err());
    }

    #[test]
    fn defaults_follow_the_profile() {
        let c = SimConfig::for_model("instant-embosser-ie4").unwrap();
        assert_eq!(c.feeders.len(), 4);
        assert_eq!(c.scaled(1000), 1000);
        let mut c = SimConfig::for_model("evolis-km500b").unwrap();
        c.speed = 0.0;
        assert_eq!(c.scaled(1000), 0);
        assert!(SimConfig::for_model("nope").is_err());
    }
}
