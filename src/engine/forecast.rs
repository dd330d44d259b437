//! Warn before production stops: for each supply (the ribbon, each feeder,
//! the reject box's free slots, cards until cleaning is required), what is
//! left, the configured threshold (`[supplies]`), whether it is at or below
//! it (a warning), whether it is exhausted (production stops), and the hours
//! left at the kiosk's recent rate. Pure: a published reading, the
//! inventory, two marks the agent keeps in the store and a rate in; plain
//! data out. The shell (`forecast_watch.rs`) gathers the inputs and logs
//! changes; status, doctor, metrics and the heartbeat show the result.
//!
//! Where a figure cannot be known it says why (`unknown`), never a guess.

use crate::config::SuppliesConfig;
use crate::printer::profile::CleaningRule;
use crate::printer::snapshot::Snapshot;
use crate::store::{FeederStock, Usage};
use serde::{Deserialize, Serialize};

/// The supplies, as metrics label them.
pub const SUPPLIES: [&str; 4] = [RIBBON, FEEDER, REJECT_BOX, CLEANING];
pub const RIBBON: &str = "ribbon";
pub const FEEDER: &str = "feeder";
pub const REJECT_BOX: &str = "reject_box";
pub const CLEANING: &str = "cleaning";

/// What the printer's counters said when the agent saw a cleaning: cards
/// since cleaning are counted from it (kept in the store's `meta`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleaningMark {
    /// `Rco;n` then.
    pub cleanings: u64,
    /// `Rco;c` then.
    pub inserted: u64,
}

/// The recent production rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rate {
    pub window_hours: u32,
    /// Blank cards taken per hour over the window; `None` when none was.
    pub cards_per_hour: Option<f64>,
    /// Cards put in the reject box per hour; `None` when none was.
    pub rejects_per_hour: Option<f64>,
}

impl Rate {
    /// The rate from what the journal says was used over `window_hours`.
    pub fn of(usage: Usage, window_hours: u32) -> Rate {
        let per_hour = |n: u64| (n > 0).then(|| n as f64 / f64::from(window_hours.max(1)));
        Rate {
            window_hours,
            cards_per_hour: per_hour(usage.taken),
            rejects_per_hour: per_hour(usage.rejected),
        }
    }
}

/// Everything a forecast is made from.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    /// The printer's published reading; `None` before the first one.
    pub reading: Option<&'a Snapshot>,
    pub stock: &'a [FeederStock],
    /// Feeders the printer has (profile).
    pub feeders: u8,
    /// Cards the reject box holds (profile `reject_box_capacity`).
    pub reject_capacity: Option<u32>,
    /// When cleaning is required (profile `[cleaning]`).
    pub cleaning_rule: Option<CleaningRule>,
    /// The reject counter's value when the box was last emptied.
    pub reject_mark: Option<u64>,
    pub cleaning_mark: Option<CleaningMark>,
    pub rate: Rate,
    pub thresholds: &'a SuppliesConfig,
}

/// One supply's forecast.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SupplyForecast {
    /// `ribbon`, `feeder`, `reject_box` or `cleaning`.
    pub supply: &'static str,
    /// The feeder's number (feeders only).
    pub feeder: Option<u8>,
    /// What is left: cards (ribbon, feeder, until cleaning) or free slots
    /// (reject box). `None`: not known, `unknown` says why.
    pub left: Option<u64>,
    /// The configured threshold: a warning at or below it.
    pub warn_at: u64,
    /// At or below the threshold (exhausted included).
    pub warning: bool,
    /// Nothing left: production stops (for the cards that need it).
    pub exhausted: bool,
    /// Hours left at the recent rate; `None` when the rate or what is left
    /// is unknown, or nothing was used recently.
    pub hours_left: Option<f64>,
    pub unknown: Option<String>,
    /// What the technician should do (on a warning).
    pub next_step: Option<String>,
    /// One line for a person.
    pub summary: String,
}

impl SupplyForecast {
    /// Ok, warning or exhausted, as the log and metrics say it.
    pub fn level(&self) -> &'static str {
        if self.exhausted {
            "exhausted"
        } else if self.warning {
            "warning"
        } else if self.left.is_none() {
            "unknown"
        } else {
            "ok"
        }
    }

    /// A stable name: `ribbon`, `feeder 2`, `reject_box`, `cleaning`.
    pub fn name(&self) -> String {
        match self.feeder {
            Some(n) => format!("{} {n}", self.supply),
            None => self.supply.to_string(),
        }
    }
}

/// Every supply's forecast, and the rate it used.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Forecast {
    pub rate: Rate,
    pub supplies: Vec<SupplyForecast>,
}

impl Forecast {
    /// Whether any supply is at or below its threshold.
    pub fn any_warning(&self) -> bool {
        self.supplies.iter().any(|s| s.warning)
    }
}

pub fn forecast(i: &Inputs<'_>) -> Forecast {
    let mut supplies = vec![ribbon(i)];
    supplies.extend((1..=i.feeders).map(|n| feeder(i, n)));
    supplies.push(reject_box(i));
    supplies.push(cleaning(i));
    Forecast {
        rate: i.rate,
        supplies,
    }
}

/// What is known of a supply before its words are put on it.
struct Known {
    left: Result<u64, String>,
    warn_at: u64,
    per_hour: Option<f64>,
    /// What the rate counts (`cards`, `rejects`).
    per: &'static str,
}

/// Builds one forecast: the level from the count and the threshold, the
/// hours from the rate, the line for a person.
fn finish(
    supply: &'static str,
    feeder: Option<u8>,
    k: Known,
    title: &str,
    unit: &str,
    soon: &str,
    now: &str,
) -> SupplyForecast {
    let (left, unknown) = match k.left {
        Ok(n) => (Some(n), None),
        Err(why) => (None, Some(why)),
    };
    let exhausted = left == Some(0);
    let warning = left.is_some_and(|n| n <= k.warn_at);
    let hours_left = match (left, k.per_hour) {
        (Some(n), Some(r)) if r > 0.0 => Some(n as f64 / r),
        _ => None,
    };
    let next_step = if exhausted {
        Some(now.to_string())
    } else if warning {
        Some(soon.to_string())
    } else {
        None
    };
    let summary = match (left, &unknown) {
        (Some(n), _) => {
            // "1 card left", "1 free slot".
            let unit = if n == 1 {
                unit.replacen("cards", "card", 1)
                    .replacen("slots", "slot", 1)
            } else {
                unit.to_string()
            };
            let mut line = format!("{title}: {n} {unit}");
            match (hours_left, k.per_hour) {
                (Some(h), Some(r)) => {
                    line.push_str(&format!(" (about {} at {} {}/h)", hours(h), rate(r), k.per))
                }
                _ => line.push_str(" (no recent production: no estimate in hours)"),
            }
            if exhausted {
                line.push_str(&format!(" — exhausted: {now}"));
            } else if warning {
                line.push_str(&format!(" — at or below {}: {soon}", k.warn_at));
            }
            line
        }
        (None, Some(why)) => format!("{title}: unknown ({why})"),
        (None, None) => format!("{title}: unknown"),
    };
    SupplyForecast {
        supply,
        feeder,
        left,
        warn_at: k.warn_at,
        warning,
        exhausted,
        hours_left,
        unknown,
        next_step,
        summary,
    }
}

fn hours(h: f64) -> String {
    if h < 1.0 {
        format!("{} min", (h * 60.0).round() as u64)
    } else {
        format!("{} h", h.round() as u64)
    }
}

fn rate(r: f64) -> String {
    if r >= 10.0 {
        format!("{}", r.round() as u64)
    } else {
        format!("{r:.1}")
    }
}

fn no_reading() -> String {
    "no reading of the printer yet".into()
}

fn ribbon(i: &Inputs<'_>) -> SupplyForecast {
    let left = match i.reading {
        None => Err(no_reading()),
        Some(r) => {
            // A ribbon missing or at its end is nothing left, whatever
            // the counter said before.
            let gone = r
                .faults
                .iter()
                .any(|f| f.code.as_str().starts_with("PRT_RIBBON_"));
            match (gone, r.ribbon_cards_left) {
                (true, _) => Ok(0),
                (false, Some(n)) => Ok(n),
                (false, None) => Err(r
                    .unavailable
                    .get("ribbon_cards_left")
                    .map(|why| format!("the printer did not say: {why}"))
                    .unwrap_or_else(|| "the printer did not say".into())),
            }
        }
    };
    finish(
        RIBBON,
        None,
        Known {
            left,
            warn_at: i.thresholds.ribbon_warn_cards,
            per_hour: i.rate.cards_per_hour,
            per: "cards",
        },
        "Ribbon",
        "cards left",
        "bring a ribbon",
        "replace the ribbon (no printed card starts)",
    )
}

fn feeder(i: &Inputs<'_>, n: u8) -> SupplyForecast {
    let stock = i.stock.iter().find(|f| f.feeder == n);
    // The feeder's own sensor wins over the count: an empty feeder has
    // nothing left, whatever the technician counted.
    let sensed_empty = i.reading.is_some_and(|r| {
        !r.unavailable.contains_key("feeders") && r.feeders.iter().any(|f| f.feeder == n && f.empty)
    });
    let left = match (sensed_empty, stock) {
        (true, _) => Ok(0),
        (false, Some(s)) => Ok(u64::from(s.count)),
        (false, None) => Err(format!(
            "its stock is not set: `satellite inventory set {n} CARD_TYPE COUNT`"
        )),
    };
    let cards = stock.map_or_else(|| "blank".to_string(), |s| s.card_type.clone());
    finish(
        FEEDER,
        Some(n),
        Known {
            left,
            warn_at: i.thresholds.feeder_warn_cards,
            per_hour: i.rate.cards_per_hour,
            per: "cards",
        },
        &format!("Feeder {n}"),
        "cards left",
        &format!("bring {cards} cards for feeder {n}"),
        &format!(
            "load {cards} cards in feeder {n}, then `satellite inventory set {n} {cards} COUNT`"
        ),
    )
}

fn reject_box(i: &Inputs<'_>) -> SupplyForecast {
    let left = (|| {
        let r = i.reading.ok_or_else(no_reading)?;
        if r.reject_box_full == Some(true) {
            return Ok(0);
        }
        let capacity = i
            .reject_capacity
            .ok_or("the printer's profile gives no reject_box_capacity")?;
        let counter = *r
            .counters
            .get("rejected")
            .ok_or("the printer's reject counter (`Rco;r`) is not read")?;
        // A counter still at 0 has never put a card in the box.
        let mark = match (i.reject_mark, counter) {
            (Some(m), _) => m,
            (None, 0) => 0,
            (None, _) => {
                return Err(
                    "not known since when the box was emptied: after emptying it, `satellite inventory reject-box --emptied`"
                        .to_string(),
                )
            }
        };
        let in_box = counter.checked_sub(mark).ok_or(
            "the reject counter is below its value when the box was emptied (another printer?): empty the box and say so, `satellite inventory reject-box --emptied`",
        )?;
        Ok(u64::from(capacity).saturating_sub(in_box))
    })();
    finish(
        REJECT_BOX,
        None,
        Known {
            left,
            warn_at: i.thresholds.reject_warn_free,
            per_hour: i.rate.rejects_per_hour,
            per: "rejects",
        },
        "Reject box",
        "free slots",
        "empty the reject box at the next visit, then `satellite inventory reject-box --emptied`",
        "empty the reject box (the cards in it are spoiled: destroy them by the bank's procedure), then `satellite inventory reject-box --emptied`",
    )
}

fn cleaning(i: &Inputs<'_>) -> SupplyForecast {
    let left = (|| {
        let r = i.reading.ok_or_else(no_reading)?;
        if r.cleaning_due == Some(true) {
            return Ok(0);
        }
        let rule = i
            .cleaning_rule
            .ok_or("the printer's profile has no [cleaning] rule")?;
        let counter = |name: &str| {
            r.counters
                .get(name)
                .copied()
                .ok_or(format!("the printer's {name} counter is not read yet"))
        };
        let interval = counter("cleaning_interval")?;
        if interval == 0 {
            return Err("the printer's cleaning interval is 0: it never requires cleaning".into());
        }
        let inserted = counter("inserted_cards")?;
        let cleanings = counter("cleanings")?;
        let since = match i.cleaning_mark {
            // Never cleaned: every card counts.
            _ if cleanings == 0 => inserted,
            Some(m) if m.cleanings == cleanings => inserted.saturating_sub(m.inserted),
            _ => return Err(
                "the printer was cleaned before the agent saw it: known after the next cleaning"
                    .into(),
            ),
        };
        let due_at = interval.saturating_mul(u64::from(rule.required_after_intervals));
        Ok(due_at.saturating_sub(since))
    })();
    finish(
        CLEANING,
        None,
        Known {
            left,
            warn_at: i.thresholds.cleaning_warn_cards,
            per_hour: i.rate.cards_per_hour,
            per: "cards",
        },
        "Cleaning",
        "cards until required",
        "bring a cleaning card",
        "load a cleaning card and run `satellite printer clean` (no card starts until then)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes::{ErrorCode, Fault};
    use crate::printer::snapshot::FeederState;
    use crate::printer::Profile;

    fn reading() -> Snapshot {
        let mut s = Snapshot::empty(None, &Profile::load("evolis-km500b", None).unwrap());
        s.ribbon = Some("ymcko".into());
        s.ribbon_cards_left = Some(120);
        s.cleaning_due = Some(false);
        s.reject_box_full = Some(false);
        s.feeders = vec![
            FeederState {
                feeder: 1,
                empty: false,
                near_empty: false,
            },
            FeederState {
                feeder: 2,
                empty: true,
                near_empty: true,
            },
        ];
        for (k, v) in [
            ("rejected", 7),
            ("cleaning_interval", 100),
            ("inserted_cards", 230),
            ("cleanings", 2),
        ] {
            s.counters.insert(k.into(), v);
        }
        s
    }

    fn stock() -> Vec<FeederStock> {
        [(1, 30), (2, 40)]
            .into_iter()
            .map(|(feeder, count)| FeederStock {
                feeder,
                card_type: "debit".into(),
                count,
                set_at: String::new(),
            })
            .collect()
    }

    const RULE: CleaningRule = CleaningRule {
        interval_counter: true,
        required_after_intervals: 2,
    };

    fn run(
        r: Option<&Snapshot>,
        stock: &[FeederStock],
        marks: (Option<u64>, Option<CleaningMark>),
        usage: Usage,
    ) -> Vec<SupplyForecast> {
        let t = SuppliesConfig::default();
        forecast(&Inputs {
            reading: r,
            stock,
            feeders: 2,
            reject_capacity: Some(20),
            cleaning_rule: Some(RULE),
            reject_mark: marks.0,
            cleaning_mark: marks.1,
            rate: Rate::of(usage, 6),
            thresholds: &t,
        })
        .supplies
    }

    fn get<'a>(f: &'a [SupplyForecast], name: &str) -> &'a SupplyForecast {
        f.iter().find(|s| s.name() == name).unwrap()
    }

    const MARKS: (Option<u64>, Option<CleaningMark>) = (
        Some(4),
        Some(CleaningMark {
            cleanings: 2,
            inserted: 200,
        }),
    );

    #[test]
    fn each_supply_counts_what_is_left_against_its_threshold() {
        let r = reading();
        let f = run(
            Some(&r),
            &stock(),
            MARKS,
            Usage {
                taken: 24,
                rejected: 3,
            },
        );
        assert_eq!(f.len(), 5);
        // 120 cards at 4 cards/h: 30 h; above the default 50.
        let ribbon = get(&f, "ribbon");
        assert_eq!(
            (ribbon.left, ribbon.warning, ribbon.hours_left),
            (Some(120), false, Some(30.0))
        );
        assert_eq!(ribbon.level(), "ok");
        // 30 cards, at or below 20? no; feeder 2 reads empty: 0, whatever its count.
        let f1 = get(&f, "feeder 1");
        assert_eq!((f1.left, f1.warning), (Some(30), false));
        let f2 = get(&f, "feeder 2");
        assert_eq!(
            (f2.left, f2.exhausted, f2.level()),
            (Some(0), true, "exhausted")
        );
        assert!(
            f2.summary.contains("load debit cards in feeder 2"),
            "{}",
            f2.summary
        );
        // 7 rejected, 4 when emptied: 3 in a box of 20; 0.5 rejects/h: 34 h.
        let rb = get(&f, "reject_box");
        assert_eq!(
            (rb.left, rb.warning, rb.hours_left),
            (Some(17), false, Some(34.0))
        );
        // Required at 2 x 100; 30 cards since the cleaning the agent saw.
        let c = get(&f, "cleaning");
        assert_eq!((c.left, c.warning), (Some(170), false));
    }

    #[test]
    fn a_warning_names_the_next_step_and_the_hours() {
        let mut r = reading();
        r.ribbon_cards_left = Some(12);
        let f = run(
            Some(&r),
            &stock(),
            MARKS,
            Usage {
                taken: 24,
                rejected: 0,
            },
        );
        let ribbon = get(&f, "ribbon");
        assert!(ribbon.warning && !ribbon.exhausted);
        assert_eq!(ribbon.next_step.as_deref(), Some("bring a ribbon"));
        assert_eq!(
            ribbon.summary,
            "Ribbon: 12 cards left (about 3 h at 4.0 cards/h) — at or below 50: bring a ribbon"
        );
        // No reject in the window: no estimate in hours, said so.
        let rb = get(&f, "reject_box");
        assert_eq!(rb.hours_left, None);
        assert!(
            rb.summary.contains("no estimate in hours"),
            "{}",
            rb.summary
        );
    }

    #[test]
    fn what_stops_the_printer_is_nothing_left() {
        let mut r = reading();
        r.faults.push(Fault::new(
            ErrorCode::PRT_RIBBON_ENDED,
            "marker-supply-empty",
            "x",
        ));
        r.reject_box_full = Some(true);
        r.cleaning_due = Some(true);
        let f = run(Some(&r), &stock(), (None, None), Usage::default());
        for name in ["ribbon", "reject_box", "cleaning"] {
            let s = get(&f, name);
            assert_eq!(
                (s.left, s.exhausted, s.warning),
                (Some(0), true, true),
                "{name}"
            );
            assert!(s.next_step.is_some(), "{name}");
        }
    }

    #[test]
    fn unknown_is_said_never_guessed() {
        // Before any reading: nothing but the feeders' counts.
        let f = run(None, &stock(), MARKS, Usage::default());
        for name in ["ribbon", "reject_box", "cleaning"] {
            let s = get(&f, name);
            assert_eq!(
                (s.left, s.warning, s.level()),
                (None, false, "unknown"),
                "{name}"
            );
            assert!(
                s.unknown.as_deref().unwrap().contains("no reading"),
                "{name}"
            );
        }
        assert_eq!(get(&f, "feeder 1").left, Some(30));
        // A feeder never set, sensor not empty.
        let f = run(Some(&reading()), &[], MARKS, Usage::default());
        let f1 = get(&f, "feeder 1");
        assert!(f1.unknown.as_deref().unwrap().contains("inventory set 1"));
        // Rejected cards since an emptying the agent did not see.
        let f = run(
            Some(&reading()),
            &stock(),
            (None, MARKS.1),
            Usage::default(),
        );
        let rb = get(&f, "reject_box");
        assert!(
            rb.unknown.as_deref().unwrap().contains("--emptied"),
            "{rb:?}"
        );
        // A counter at 0 never rejected a card: the box is empty.
        let mut r = reading();
        r.counters.insert("rejected".into(), 0);
        let f = run(Some(&r), &stock(), (None, MARKS.1), Usage::default());
        assert_eq!(get(&f, "reject_box").left, Some(20));
        // Cleaned before the agent's mark: unknown until the next cleaning.
        let f = run(
            Some(&reading()),
            &stock(),
            (MARKS.0, None),
            Usage::default(),
        );
        assert!(get(&f, "cleaning").unknown.is_some());
        // Never cleaned: every inserted card counts (230 of 200 = due).
        let mut r = reading();
        r.counters.insert("cleanings".into(), 0);
        r.counters.insert("inserted_cards".into(), 150);
        let f = run(Some(&r), &stock(), (MARKS.0, None), Usage::default());
        assert_eq!(get(&f, "cleaning").left, Some(50));
        assert!(
            get(&f, "cleaning").warning,
            "50 is at the default threshold"
        );
        // No rule in the profile, no interval read: unknown.
        let mut r = reading();
        r.counters.remove("cleaning_interval");
        let f = run(Some(&r), &stock(), MARKS, Usage::default());
        assert!(get(&f, "cleaning")
            .unknown
            .as_deref()
            .unwrap()
            .contains("cleaning_interval"));
    }

    #[test]
    fn the_rate_is_cards_per_hour_over_the_window() {
        let r = Rate::of(
            Usage {
                taken: 12,
                rejected: 0,
            },
            6,
        );
        assert_eq!((r.cards_per_hour, r.rejects_per_hour), (Some(2.0), None));
        assert_eq!(Rate::of(Usage::default(), 6).cards_per_hour, None);
    }
}
