//! A full reading of the printer for technicians and readiness checks: status
//! flags with their codes, feeders, ribbon, cleaning, reject box, sensors,
//! counters. Reads only: field tools never change the printer unless asked.

use super::conn::{Connection, Identity, Outcome};
use super::driver::Printer;
use super::faults::{self, ActiveFlag};
use crate::codes::{ErrorCode, Fault, Severity};
use dialect::ops::{Counter, Op, Sensor};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize)]
pub struct FeederState {
    pub feeder: u8,
    pub empty: bool,
    pub near_empty: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub identity: Option<Identity>,
    pub profile: String,
    /// Raw status words, when the firmware has them.
    pub status_words: Option<String>,
    pub flags: Vec<ActiveFlag>,
    /// Bits set that the profile does not know: shown, never dropped.
    pub unknown_bits: Vec<String>,
    /// Error-severity conditions, as standard faults: the printer cannot produce while any is present.
    pub faults: Vec<Fault>,
    pub feeders: Vec<FeederState>,
    pub card_position: Option<String>,
    pub ribbon: Option<String>,
    pub ribbon_cards_left: Option<u64>,
    pub cleaning_due: Option<bool>,
    pub reject_box_full: Option<bool>,
    pub sensors: BTreeMap<String, f32>,
    pub counters: BTreeMap<String, u64>,
    /// Reads that failed, with why (an old firmware lacks some).
    pub unavailable: BTreeMap<String, String>,
}

impl Snapshot {
    pub fn ready(&self) -> bool {
        self.stopping_fault().is_none()
    }

    /// What stops every card, from this reading: the first status flag of
    /// error severity, then what firmware without status words tells by
    /// other commands (cleaning required, the reject box full).
    pub fn stopping_fault(&self) -> Option<Fault> {
        if let Some(f) = self.faults.first() {
            return Some(f.clone());
        }
        if self.cleaning_due == Some(true) {
            return Some(cleaning_required());
        }
        if self.reject_box_full == Some(true) {
            return Some(Fault::new(
                ErrorCode::PRD_REJECT_FULL,
                "reject-area-full",
                "the reject box is full: a card that failed could not be put aside; empty it",
            ));
        }
        None
    }
}

/// The printer refuses to print until it is cleaned.
pub fn cleaning_required() -> Fault {
    Fault::new(
        ErrorCode::PRT_SETUP_ERROR,
        "cleaning-required",
        "cleaning required: the printer refuses to print until it is cleaned (load a cleaning card, run `satellite printer clean`)",
    )
}

impl Printer {
    /// Reads the status words and the supplies (see [`read_supplies`]) now,
    /// waiting its turn on the link, and publishes them into the view (the
    /// sensors and counters of the last full reading are kept). Returns the
    /// reading as published.
    pub async fn refresh_supplies(&self) -> Result<Snapshot, Fault> {
        let profile = self.profile().clone();
        let base = self.view().borrow().reading.clone();
        let s = self
            .with_conn(move |c| {
                Box::pin(async move {
                    let mut s =
                        base.unwrap_or_else(|| Snapshot::empty(c.identity().cloned(), &profile));
                    s.identity = c.identity().cloned();
                    for k in [
                        "status_words",
                        "feeders",
                        "feeder_warnings",
                        "ribbon",
                        "ribbon_cards_left",
                        "cleaning",
                        "reject_box",
                    ] {
                        s.unavailable.remove(k);
                    }
                    read_words(c, &profile, &mut s).await?;
                    s.feeders.clear();
                    read_supplies(c, &profile, &mut s).await?;
                    Ok(Ok(s))
                })
            })
            .await?;
        self.publish_reading(s.clone(), false);
        Ok(s)
    }

    /// Reads everything a technician wants to see.
    pub async fn snapshot(&self) -> Result<Snapshot, Fault> {
        let profile = self.profile().clone();
        self.with_conn(move |c| Box::pin(async move { read_all(c, &profile).await }))
            .await
    }
}

impl Snapshot {
    /// A reading with nothing read yet.
    pub fn empty(identity: Option<Identity>, profile: &super::Profile) -> Snapshot {
        Snapshot {
            identity,
            profile: profile.model.id.clone(),
            status_words: None,
            flags: vec![],
            unknown_bits: vec![],
            faults: vec![],
            feeders: vec![],
            card_position: None,
            ribbon: None,
            ribbon_cards_left: None,
            cleaning_due: None,
            reject_box_full: None,
            sensors: BTreeMap::new(),
            counters: BTreeMap::new(),
            unavailable: BTreeMap::new(),
        }
    }

    /// Takes in a reading of the status words: flags, unknown bits and the
    /// faults they stand for.
    pub fn apply_status(&mut self, profile: &super::Profile, words: &dialect::status::StatusWords) {
        let (flags, unknown) = faults::active_flags(profile, words);
        self.faults = flags
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .filter_map(|f| {
                f.code.map(|code| {
                    if f.reason == "cleaning-required" {
                        // Said as the technician needs it, with the next step.
                        return Fault {
                            code,
                            ..cleaning_required()
                        };
                    }
                    Fault::new(
                        code,
                        f.reason.clone(),
                        format!("status flag {} is set", f.name),
                    )
                })
            })
            .collect();
        // Where the words carry each feeder's sensor, the feeders follow
        // them between full readings: a feeder emptied while idle shows at
        // the next probe, not a minute later.
        for f in &mut self.feeders {
            let name = format!("feeder{}_empty", f.feeder);
            if profile.flag(&name).is_some() {
                f.empty = flags.iter().any(|a| a.name == name);
            }
        }
        self.flags = flags;
        self.unknown_bits = unknown
            .into_iter()
            .map(|(w, b)| format!("{w} bit {b}"))
            .collect();
        self.status_words = Some(words.render());
        self.unavailable.remove("status_words");
    }
}

async fn read_all(c: &mut Connection, profile: &super::Profile) -> Outcome<Snapshot> {
    let mut s = Snapshot::empty(c.identity().cloned(), profile);
    read_words(c, profile, &mut s).await?;
    read_supplies(c, profile, &mut s).await?;
    s.card_position = match c.read_text(&Op::ReadCardPosition).await? {
        Ok(t) => Some(t),
        Err(f) => {
            s.unavailable.insert("card_position".into(), f.description);
            None
        }
    };
    for sensor in Sensor::ALL {
        if let Some(f) = super::gating::not_on_this_firmware(profile, &Op::ReadSensor(sensor)) {
            // Not asked: said so rather than left out.
            s.unavailable.insert(sensor.name().into(), f.description);
            continue;
        }
        if let Some(t) = read(
            c,
            &Op::ReadSensor(sensor),
            &mut s.unavailable,
            sensor.name(),
        )
        .await?
        {
            if let Some(v) = note(
                dialect::status::parse_voltage(&t),
                sensor.name(),
                &mut s.unavailable,
            ) {
                s.sensors.insert(sensor.name().into(), v);
            }
        }
    }
    // The reject counter and the cleaning interval only where the profile
    // says the firmware answers them: the supplies forecast's reject box
    // and cleaning figures come from them.
    let extra = [
        (
            "rejected",
            Counter::Rejected,
            profile.capabilities.reject_counter,
        ),
        (
            "cleaning_interval",
            Counter::CleaningInterval,
            profile.cleaning.is_some_and(|r| r.interval_counter),
        ),
    ];
    for (name, counter) in [
        ("printed_panels", Counter::PrintedPanels),
        ("inserted_cards", Counter::InsertedCards),
        ("cleanings", Counter::CleaningsDone),
    ]
    .into_iter()
    .chain(
        extra
            .into_iter()
            .filter(|(_, _, has)| *has)
            .map(|(n, c, _)| (n, c)),
    ) {
        if let Some(t) = read(c, &Op::ReadCounter(counter), &mut s.unavailable, name).await? {
            if let Some(v) = note(dialect::status::parse_count(&t), name, &mut s.unavailable) {
                s.counters.insert(name.into(), v);
            }
        }
    }
    Ok(Ok(s))
}

/// The status words, read into `s` (or why they could not be).
async fn read_words(
    c: &mut Connection,
    profile: &super::Profile,
    s: &mut Snapshot,
) -> Result<(), super::LinkError> {
    match c.read_status().await? {
        Ok(words) => s.apply_status(profile, &words),
        Err(f) => {
            s.unavailable.insert("status_words".into(), f.description);
        }
    }
    Ok(())
}

/// What a card uses up or needs room for, read into `s`: feeders (empty,
/// near empty), the ribbon's type and cards left, whether cleaning is
/// required, whether the reject box is full. Read before each card (the
/// engine's supply check) as well as in a full reading.
async fn read_supplies(
    c: &mut Connection,
    profile: &super::Profile,
    s: &mut Snapshot,
) -> Result<(), super::LinkError> {
    let n = profile.capabilities.feeders;
    let empty = read(c, &Op::ReadFeeders, &mut s.unavailable, "feeders")
        .await?
        .and_then(|t| {
            note(
                dialect::status::parse_feeder_answer(&t, n),
                "feeders",
                &mut s.unavailable,
            )
        });
    let near = read(
        c,
        &Op::ReadFeederWarnings,
        &mut s.unavailable,
        "feeder_warnings",
    )
    .await?
    .and_then(|t| {
        note(
            dialect::status::parse_feeder_answer(&t, n),
            "feeder_warnings",
            &mut s.unavailable,
        )
    });
    for i in 0..n as usize {
        s.feeders.push(FeederState {
            feeder: i as u8 + 1,
            empty: empty.as_ref().is_some_and(|v| v[i]),
            near_empty: near.as_ref().is_some_and(|v| v[i]),
        });
    }
    s.ribbon = read(c, &Op::ReadRibbonType, &mut s.unavailable, "ribbon").await?;
    s.ribbon_cards_left = read(
        c,
        &Op::ReadCounter(Counter::RibbonCardsLeft),
        &mut s.unavailable,
        "ribbon_cards_left",
    )
    .await?
    .and_then(|t| {
        note(
            dialect::status::parse_count(&t),
            "ribbon_cards_left",
            &mut s.unavailable,
        )
    });
    s.cleaning_due = match c.read_text(&Op::ReadCleaning).await? {
        Ok(t) => Some(t.contains("NEED CLEANING")),
        Err(f) => {
            s.unavailable.insert("cleaning".into(), f.description);
            None
        }
    };
    s.reject_box_full = match c.read_text(&Op::ReadRejectBox).await? {
        Ok(t) => Some(t == "CARD"),
        Err(f) => {
            s.unavailable.insert("reject_box".into(), f.description);
            None
        }
    };
    Ok(())
}

async fn read(
    c: &mut Connection,
    op: &Op,
    unavailable: &mut BTreeMap<String, String>,
    name: &str,
) -> Result<Option<String>, super::LinkError> {
    match c.run(op).await? {
        Ok(t) => Ok(Some(t)),
        Err(f) => {
            unavailable.insert(name.into(), format!("{} {}", f.code, f.description));
            Ok(None)
        }
    }
}

fn note<T>(
    r: Result<T, String>,
    name: &str,
    unavailable: &mut BTreeMap<String, String>,
) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(why) => {
            unavailable.insert(name.into(), why);
            None
        }
    }
}
