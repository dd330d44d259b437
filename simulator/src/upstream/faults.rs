//! Faults a test can inject: what they are, which endpoints they hit and how
//! many calls they last. The handlers ask [`Faults::take`] at the start of
//! each call; the listener watches [`Faults::is_down`].

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The endpoint groups a fault can be aimed at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Group {
    Token,
    Intake,
    Ack,
    Data,
    Events,
    Heartbeat,
    Webhook,
    D1token,
    D1track,
    All,
}

impl FromStr for Group {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        serde_json::from_value(serde_json::Value::String(s.to_owned()))
            .map_err(|_| format!("unknown fault group {s:?}"))
    }
}

/// One fault. Written as in the control API: `down`, `status:N`,
/// `unavailable:S`, `slow:MS`, `unauthorized_once`, `duplicate`,
/// `data_error:CODE`, `poison:N:TEXT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The upstream listener stops accepting (whatever the group).
    Down,
    /// Answer this status with the group's JSON error body.
    Status(u16),
    /// 503 with `Retry-After` in seconds.
    Unavailable(u32),
    /// Delay each answer by this many milliseconds.
    Slow(u64),
    /// The next call gets 401 even with a valid token.
    UnauthorizedOnce,
    /// Intake: each request twice in an answer, and once more after its ack.
    Duplicate,
    /// Deferred card data answers this `CB_`/`DP_` code.
    DataError(String),
    /// A receiver bug triggered by one payload: any call whose body or path
    /// contains the text (a card token, say) is answered with this status;
    /// every other call is served.
    Poison(u16, String),
}

/// The deferred-data failures a `data_error` fault may name, with the status
/// the central base answers them with.
pub const DATA_ERRORS: &[(&str, u16)] = &[
    ("DP_NOT_AVAILABLE", 503),
    ("DP_IO_ERROR", 502),
    ("DP_TIMEOUT", 504),
    ("CB_NOT_AVAILABLE", 503),
    ("CB_DB_NOT_AVAILABLE", 503),
    ("CB_NETWORK_NOT_AVAILABLE", 503),
    ("CB_AUTHENTICATION_FAILED", 401),
    ("CB_SERVICE_NOT_ALLOWED", 403),
    ("CB_TIME", 504),
];

impl FromStr for Fault {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (name, arg) = match s.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (s, None),
        };
        let bad = || format!("bad fault {s:?}");
        Ok(match (name, arg) {
            ("down", None) => Fault::Down,
            ("status", Some(a)) => {
                let n: u16 = a.parse().map_err(|_| bad())?;
                if !(100..=599).contains(&n) {
                    return Err(bad());
                }
                Fault::Status(n)
            }
            ("unavailable", Some(a)) => Fault::Unavailable(a.parse().map_err(|_| bad())?),
            ("slow", Some(a)) => Fault::Slow(a.parse().map_err(|_| bad())?),
            ("unauthorized_once", None) => Fault::UnauthorizedOnce,
            ("duplicate", None) => Fault::Duplicate,
            ("data_error", Some(a)) if DATA_ERRORS.iter().any(|(c, _)| *c == a) => {
                Fault::DataError(a.to_owned())
            }
            ("poison", Some(a)) => {
                let (n, text) = a.split_once(':').ok_or_else(bad)?;
                let n: u16 = n.parse().map_err(|_| bad())?;
                if !(400..=599).contains(&n) || text.is_empty() {
                    return Err(bad());
                }
                Fault::Poison(n, text.to_owned())
            }
            _ => return Err(bad()),
        })
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Down => write!(f, "down"),
            Fault::Status(n) => write!(f, "status:{n}"),
            Fault::Unavailable(s) => write!(f, "unavailable:{s}"),
            Fault::Slow(ms) => write!(f, "slow:{ms}"),
            Fault::UnauthorizedOnce => write!(f, "unauthorized_once"),
            Fault::Duplicate => write!(f, "duplicate"),
            Fault::DataError(c) => write!(f, "data_error:{c}"),
            Fault::Poison(n, text) => write!(f, "poison:{n}:{text}"),
        }
    }
}

/// A fault in force: its group and how many more calls it lasts (`None`:
/// until cleared).
#[derive(Clone, Debug, Serialize)]
pub struct Active {
    pub group: Group,
    #[serde(serialize_with = "display")]
    pub fault: Fault,
    pub remaining: Option<u32>,
}

fn display<S: serde::Serializer>(f: &Fault, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(f)
}

/// What a call must do, decided once at its start.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decision {
    pub delay_ms: u64,
    /// Answer this instead of running the handler.
    pub answer: Option<Fault>,
    /// For data fetches: answer this code.
    pub data_error: Option<String>,
}

/// The table of faults in force.
#[derive(Debug, Default)]
pub struct Faults {
    active: Vec<Active>,
}

impl Faults {
    pub fn set(&mut self, group: Group, fault: Fault, count: Option<u32>) {
        // `unauthorized_once` is once unless told otherwise.
        let count = match (&fault, count) {
            (Fault::UnauthorizedOnce, None) => Some(1),
            (_, c) => c,
        };
        self.active.push(Active {
            group,
            fault,
            remaining: count,
        });
    }

    /// Clears the faults of `group` (`All` or `None`: every fault).
    pub fn clear(&mut self, group: Option<Group>) {
        match group {
            None | Some(Group::All) => self.active.clear(),
            Some(g) => self.active.retain(|a| a.group != g),
        }
    }

    pub fn list(&self) -> Vec<Active> {
        self.active.clone()
    }

    /// The listener is down while any `down` fault is in force.
    pub fn is_down(&self) -> bool {
        self.active.iter().any(|a| a.fault == Fault::Down)
    }

    /// The faults a call in `group` meets, each counted once. `duplicate`
    /// is left for [`Faults::take_duplicate`]: it counts only answers that
    /// carry requests.
    pub fn take(&mut self, group: Group) -> Decision {
        let mut d = Decision::default();
        for a in self.active.iter_mut() {
            if !(a.group == group || a.group == Group::All) {
                continue;
            }
            let used = match &a.fault {
                Fault::Down | Fault::Duplicate | Fault::Poison(..) => false,
                Fault::Slow(ms) => {
                    d.delay_ms += ms;
                    true
                }
                Fault::DataError(code) if group == Group::Data => {
                    if d.answer.is_none() && d.data_error.is_none() {
                        d.data_error = Some(code.clone());
                        true
                    } else {
                        false
                    }
                }
                Fault::DataError(_) => false,
                f @ (Fault::Status(_) | Fault::Unavailable(_) | Fault::UnauthorizedOnce) => {
                    if d.answer.is_none() && d.data_error.is_none() {
                        d.answer = Some(f.clone());
                        true
                    } else {
                        false
                    }
                }
            };
            if used {
                if let Some(n) = a.remaining.as_mut() {
                    *n = n.saturating_sub(1);
                }
            }
        }
        self.active.retain(|a| a.remaining != Some(0));
        d
    }

    /// The status a poisoned payload of `group` is answered with: the
    /// first `poison` fault whose text `seen` contains (counted).
    pub fn poisoned(&mut self, group: Group, seen: &str) -> Option<u16> {
        let hit = self.active.iter_mut().find(|a| {
            matches!(&a.fault, Fault::Poison(_, text) if seen.contains(text.as_str()))
                && (a.group == group || a.group == Group::All)
        })?;
        let Fault::Poison(n, _) = hit.fault else {
            return None;
        };
        if let Some(r) = hit.remaining.as_mut() {
            *r = r.saturating_sub(1);
        }
        self.active.retain(|a| a.remaining != Some(0));
        Some(n)
    }

    /// Whether an intake answer with requests in it is to duplicate them
    /// (counts that answer).
    pub fn take_duplicate(&mut self) -> bool {
        let hit = self
            .active
            .iter_mut()
            .find(|a| a.fault == Fault::Duplicate && matches!(a.group, Group::Intake | Group::All));
        let Some(a) = hit else { return false };
        if let Some(n) = a.remaining.as_mut() {
            *n = n.saturating_sub(1);
        }
        self.active.retain(|a| a.remaining != Some(0));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_every_fault() {
        for s in [
            "down",
            "status:500",
            "unavailable:7",
            "slow:250",
            "unauthorized_once",
            "duplicate",
            "data_error:DP_TIMEOUT",
            "poison:500:tok-7",
        ] {
            assert_eq!(s.parse::<Fault>().unwrap().to_string(), s);
        }
        for bad in [
            "status",
            "status:42",
            "slow:x",
            "data_error:NOPE",
            "later",
            "poison:500",
            "poison:200:x",
        ] {
            assert!(bad.parse::<Fault>().is_err(), "{bad}");
        }
        assert_eq!("d1track".parse::<Group>(), Ok(Group::D1track));
        assert!("nope".parse::<Group>().is_err());
    }

    #[test]
    fn counts_limit_a_fault_and_groups_aim_it() {
        let mut f = Faults::default();
        f.set(Group::Events, Fault::Status(500), Some(2));
        assert_eq!(f.take(Group::Heartbeat), Decision::default());
        assert_eq!(f.take(Group::Events).answer, Some(Fault::Status(500)));
        assert_eq!(f.take(Group::Events).answer, Some(Fault::Status(500)));
        assert_eq!(f.take(Group::Events).answer, None);
        f.set(Group::All, Fault::UnauthorizedOnce, None);
        assert_eq!(f.take(Group::Ack).answer, Some(Fault::UnauthorizedOnce));
        assert_eq!(f.take(Group::Ack).answer, None);
        f.set(Group::All, Fault::Slow(10), None);
        f.set(Group::Intake, Fault::Down, None);
        assert!(f.is_down());
        assert_eq!(f.take(Group::Data).delay_ms, 10);
        f.clear(Some(Group::Intake));
        assert!(!f.is_down());
        f.clear(None);
        assert!(f.list().is_empty());
    }
}
