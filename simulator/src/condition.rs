//! Conditions: the faults and states a scenario, the control socket or a test
//! raises on the simulated printer. Names are kebab-case; a few take an
//! argument after `:` (`slow:300`, `unreachable:1500`, `garbage:2`,
//! `silent:5000`, `power-cycle:3000`).
//!
//! What each one does to the firmware lives in `firmware/`; this file only
//! names them.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Every feeder reads empty: `Si` answers `FEEDER EMPTY`.
    FeederEmpty,
    /// The next `Si` jams the card at the feeder (`CARD JAM`); it stays until cleared.
    FeederJam,
    /// Feeder door open: the feeders read empty (our extension).
    FeederDoorOpen,
    CoverOpen,
    RibbonMissing,
    RibbonEnded,
    RibbonError,
    HopperFull,
    HopperDoorOpen,
    /// `Se` jams the card at the output (`CARD JAM`, INF card_hopper).
    HopperJam,
    RejectFull,
    MagWriteFail,
    /// `Smr` answers the written track with one character changed.
    MagReadMismatch,
    ChipMute,
    /// `Sis` answers OK but the chip never reaches the reader.
    CardNotInReader,
    EmbossFail,
    /// Tipping foil ended: `Xee` answers `EMBOSS RIBBON` (our extension).
    EmbossRibbon,
    Paused,
    Locked,
    /// The link drops; it comes back after the given ms (default 2000) or at clear.
    Unreachable(Option<u64>),
    /// Every reply is delayed by the given ms (default 5000).
    Slow(Option<u64>),
    /// The next n replies (default: until cleared) are malformed bytes.
    Garbage(Option<u32>),
    /// The printer is switched off on a line that stays open: every byte is
    /// consumed, nothing is answered, no command takes effect. Ends after
    /// the given ms (not scaled), or at clear; nothing is lost meanwhile.
    Silent(Option<u64>),
    /// The printer restarts without the line dropping: silent while it boots
    /// for the given ms (not scaled; default [`DEFAULT_BOOT_MS`] scaled by
    /// `speed`, at least [`MIN_BOOT_MS`]), then it answers with its unsaved
    /// settings lost and INF just_rebooted set. Clearing it ends the boot now.
    PowerCycle(Option<u64>),
}

/// Every condition name, for help texts and errors.
pub const NAMES: &[&str] = &[
    "feeder-empty",
    "feeder-jam",
    "feeder-door-open",
    "cover-open",
    "ribbon-missing",
    "ribbon-ended",
    "ribbon-error",
    "hopper-full",
    "hopper-door-open",
    "hopper-jam",
    "reject-full",
    "mag-write-fail",
    "mag-read-mismatch",
    "chip-mute",
    "card-not-in-reader",
    "emboss-fail",
    "emboss-ribbon",
    "paused",
    "locked",
    "unreachable",
    "slow",
    "garbage",
    "silent",
    "power-cycle",
];

pub const DEFAULT_UNREACHABLE_MS: u64 = 2000;
pub const DEFAULT_SLOW_MS: u64 = 5000;
/// Boot time of `power-cycle` without an argument, at speed 1; scaled by `speed`.
pub const DEFAULT_BOOT_MS: u64 = 1500;
/// The shortest scaled boot (speed 0 included), so a host can see the silence.
pub const MIN_BOOT_MS: u64 = 50;

impl Condition {
    /// The kebab-case name, without the argument.
    pub fn name(&self) -> &'static str {
        use Condition::*;
        match self {
            FeederEmpty => "feeder-empty",
            FeederJam => "feeder-jam",
            FeederDoorOpen => "feeder-door-open",
            CoverOpen => "cover-open",
            RibbonMissing => "ribbon-missing",
            RibbonEnded => "ribbon-ended",
            RibbonError => "ribbon-error",
            HopperFull => "hopper-full",
            HopperDoorOpen => "hopper-door-open",
            HopperJam => "hopper-jam",
            RejectFull => "reject-full",
            MagWriteFail => "mag-write-fail",
            MagReadMismatch => "mag-read-mismatch",
            ChipMute => "chip-mute",
            CardNotInReader => "card-not-in-reader",
            EmbossFail => "emboss-fail",
            EmbossRibbon => "emboss-ribbon",
            Paused => "paused",
            Locked => "locked",
            Unreachable(_) => "unreachable",
            Slow(_) => "slow",
            Garbage(_) => "garbage",
            Silent(_) => "silent",
            PowerCycle(_) => "power-cycle",
        }
    }
}

/// Checks a bare condition name (as `clear NAME` takes it; an argument is ignored).
pub fn check_name(name: &str) -> Result<&'static str, String> {
    let bare = name.split(':').next().unwrap_or("").trim();
    NAMES
        .iter()
        .copied()
        .find(|n| *n == bare)
        .ok_or_else(|| format!("unknown condition {bare:?} (known: {})", NAMES.join(", ")))
}

impl FromStr for Condition {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        use Condition::*;
        let s = s.trim();
        let (name, arg) = match s.split_once(':') {
            Some((n, a)) => (n.trim(), Some(a.trim())),
            None => (s, None),
        };
        let num = |what: &str| -> Result<Option<u64>, String> {
            match arg {
                None => Ok(None),
                Some(a) => a
                    .parse::<u64>()
                    .map(Some)
                    .map_err(|_| format!("{name}: {what} {a:?} is not a whole number")),
            }
        };
        let no_arg = |c: Condition| -> Result<Condition, String> {
            match arg {
                None => Ok(c),
                Some(a) => Err(format!("{name} takes no argument (got {a:?})")),
            }
        };
        match check_name(name)? {
            "feeder-empty" => no_arg(FeederEmpty),
            "feeder-jam" => no_arg(FeederJam),
            "feeder-door-open" => no_arg(FeederDoorOpen),
            "cover-open" => no_arg(CoverOpen),
            "ribbon-missing" => no_arg(RibbonMissing),
            "ribbon-ended" => no_arg(RibbonEnded),
            "ribbon-error" => no_arg(RibbonError),
            "hopper-full" => no_arg(HopperFull),
            "hopper-door-open" => no_arg(HopperDoorOpen),
            "hopper-jam" => no_arg(HopperJam),
            "reject-full" => no_arg(RejectFull),
            "mag-write-fail" => no_arg(MagWriteFail),
            "mag-read-mismatch" => no_arg(MagReadMismatch),
            "chip-mute" => no_arg(ChipMute),
            "card-not-in-reader" => no_arg(CardNotInReader),
            "emboss-fail" => no_arg(EmbossFail),
            "emboss-ribbon" => no_arg(EmbossRibbon),
            "paused" => no_arg(Paused),
            "locked" => no_arg(Locked),
            "unreachable" => Ok(Unreachable(num("delay")?)),
            "slow" => Ok(Slow(num("delay")?)),
            "silent" => Ok(Silent(num("duration")?)),
            "power-cycle" => Ok(PowerCycle(num("boot time")?)),
            "garbage" => match num("count")? {
                None => Ok(Garbage(None)),
                Some(n) if n > 0 && n <= u32::MAX as u64 => Ok(Garbage(Some(n as u32))),
                Some(n) => Err(format!("garbage: count {n} must be 1 or more")),
            },
            other => Err(format!("unknown condition {other:?}")),
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Condition::Unreachable(Some(ms))
            | Condition::Slow(Some(ms))
            | Condition::Silent(Some(ms))
            | Condition::PowerCycle(Some(ms)) => {
                write!(f, "{}:{ms}", self.name())
            }
            Condition::Garbage(Some(n)) => write!(f, "{}:{n}", self.name()),
            _ => f.write_str(self.name()),
        }
    }
}

impl serde::Serialize for Condition {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_and_displays_back() {
        for name in NAMES {
            let c: Condition = name.parse().unwrap();
            assert_eq!(c.to_string(), *name);
        }
    }

    #[test]
    fn arguments() {
        assert_eq!(
            "slow:300".parse::<Condition>().unwrap(),
            Condition::Slow(Some(300))
        );
        assert_eq!(
            "unreachable".parse::<Condition>().unwrap(),
            Condition::Unreachable(None)
        );
        assert_eq!(
            "garbage:2".parse::<Condition>().unwrap().to_string(),
            "garbage:2"
        );
        assert_eq!(
            "silent:250".parse::<Condition>().unwrap(),
            Condition::Silent(Some(250))
        );
        assert_eq!(
            "power-cycle".parse::<Condition>().unwrap(),
            Condition::PowerCycle(None)
        );
        assert_eq!(
            "power-cycle:3000".parse::<Condition>().unwrap().to_string(),
            "power-cycle:3000"
        );
        assert_eq!(check_name("power-cycle:10"), Ok("power-cycle"));
        assert!("silent:soon".parse::<Condition>().is_err());
        assert!("garbage:0".parse::<Condition>().is_err());
        assert!("slow:fast".parse::<Condition>().is_err());
        assert!("cover-open:1".parse::<Condition>().is_err());
        let e = "cover-opn".parse::<Condition>().unwrap_err();
        assert!(e.contains("cover-opn") && e.contains("cover-open"), "{e}");
    }
}
