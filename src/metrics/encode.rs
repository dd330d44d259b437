//! One scrape as a prometheus-client collector: the event families, then
//! the published state read for this scrape, each family with its HELP.
//! States (the engine's, the printer's, its reasons and faults, each
//! upstream link's) are state sets written as gauges: one series per
//! possible value, 1 for the current ones, so that a value that goes away
//! reads 0 rather than vanishing.

use super::events::Metrics;
use super::published::{Published, PRINTER_STATES};
use crate::engine::forecast::SupplyForecast;
use crate::engine::state::Activity;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::MetricType;
use std::time::SystemTime;

/// A supply's levels (`SupplyForecast::level`).
const SUPPLY_LEVELS: [&str; 4] = ["ok", "warning", "exhausted", "unknown"];

/// The upstream link states (`upstream::health::LinkHealth::state`).
const LINK_STATES: [&str; 3] = ["up", "down", "unknown"];

/// What one scrape writes.
#[derive(Debug)]
pub struct Scrape {
    pub events: Metrics,
    pub published: Published,
    /// When the scrape was read (the outbox's oldest age counts from it).
    pub at: SystemTime,
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.events.encode(&mut encoder)?;
        let p = &self.published;
        let e = &mut encoder;

        let mut f = gauge(
            e,
            "satellite_build_info",
            "The agent's version, as a label; always 1",
        )?;
        f.encode_family(&[("version", env!("CARGO_PKG_VERSION"))])?
            .encode_gauge(&1i64)?;

        let now = p.activity.name();
        let mut f = gauge(
            e,
            "satellite_engine_state",
            "What the production engine does now: 1 for the current state, 0 for the others",
        )?;
        for s in Activity::NAMES {
            set(&mut f, &[("state", s)], s == now)?;
        }
        if let Some(n) = p.cards_in_doubt() {
            gauge(
                e,
                "satellite_cards_in_doubt",
                "Cards whose outcome the agent is not sure of yet (a link failure mid-step, a restart): nothing else is produced meanwhile",
            )?
            .encode_gauge(&n)?;
        }
        gauge(
            e,
            "satellite_technician_needed",
            "1 when a card in doubt waits for a technician (the printer refused its reject): satellite status says which",
        )?
        .encode_gauge(&u64::from(p.technician_needed()))?;

        let printer = &p.printer;
        let mut f = gauge(
            e,
            "satellite_printer_state",
            "The printer as last published: ready, not_ready (an error condition stops production) or offline (link down); 1 for the current state",
        )?;
        for s in PRINTER_STATES {
            set(&mut f, &[("state", s)], s == printer.state)?;
        }
        let mut f = gauge(
            e,
            "satellite_printer_reason",
            "Conditions the printer reports now, by reason word (IPP style, from its profile; the link's own while it is down): 1 when present",
        )?;
        for (reason, on) in &printer.reasons {
            set(&mut f, &[("reason", reason.as_str())], *on)?;
        }
        let mut f = gauge(
            e,
            "satellite_printer_fault",
            "Faults stopping production now, by standard code (PRT_*, PRD_*): 1 when present",
        )?;
        for (code, on) in &printer.faults {
            set(&mut f, &[("code", code.as_str())], *on)?;
        }
        if let Some(age) = printer.reading_age {
            gauge(
                e,
                "satellite_printer_reading_age_seconds",
                "Age of the last status reading the published view holds (refreshed about every second while idle)",
            )?
            .encode_gauge(&age.as_secs_f64())?;
        }
        // The first handshake is the connection, every later one a reconnection.
        let reconnects = ConstCounter::new(printer.connections.saturating_sub(1));
        reconnects.encode(e.encode_descriptor(
            "satellite_printer_reconnects",
            "Times the printer link came back (a handshake after the first) since the agent started",
            None,
            reconnects.metric_type(),
        )?)?;

        self.supplies(e)?;
        self.store(e)?;

        let mut f = gauge(
            e,
            "satellite_upstream_link_state",
            "Each upstream link (sinks, the central base's intake): up, down or unknown (no call yet); 1 for the current state",
        )?;
        for (link, h) in &p.links {
            for s in LINK_STATES {
                set(
                    &mut f,
                    &[("link", link.as_str()), ("state", s)],
                    h.state == s,
                )?;
            }
        }
        Ok(())
    }
}

impl Scrape {
    /// Feeders, ribbon, reject box, cleaning: from the printer's last full
    /// reading, and the stock a technician set.
    fn supplies(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let printer = &self.published.printer;
        if let Some(feeders) = &printer.feeders {
            let mut f = gauge(
                e,
                "satellite_feeder_empty",
                "1 when the feeder's sensor says empty (the sensor wins over the stock count)",
            )?;
            for (i, (empty, _)) in feeders.iter().enumerate() {
                set(&mut f, &[("feeder", feeder_label(i))], *empty)?;
            }
            let mut f = gauge(
                e,
                "satellite_feeder_near_empty",
                "1 when the feeder's sensor says nearly empty",
            )?;
            for (i, (_, near)) in feeders.iter().enumerate() {
                set(&mut f, &[("feeder", feeder_label(i))], *near)?;
            }
        }
        if let Some(store) = &self.published.store {
            if !store.stock.is_empty() {
                let mut f = gauge(
                    e,
                    "satellite_feeder_stock_cards",
                    "Cards left in each feeder as a technician set them, counted down per card taken, with the feeder's card type",
                )?;
                for s in &store.stock {
                    f.encode_family(&[
                        ("feeder", s.feeder.to_string()),
                        ("card_type", s.card_type.clone()),
                    ])?
                    .encode_gauge(&s.count)?;
                }
            }
        }
        if let Some(n) = printer.ribbon_cards_left {
            gauge(
                e,
                "satellite_ribbon_remaining_cards",
                "Cards the ribbon can still print, as the printer counts them",
            )?
            .encode_gauge(&n)?;
        }
        if let Some(full) = printer.reject_box_full {
            gauge(
                e,
                "satellite_reject_box_full",
                "1 when the reject box is full",
            )?
            .encode_gauge(&u64::from(full))?;
        }
        if let Some(due) = printer.cleaning_due {
            gauge(
                e,
                "satellite_printer_cleaning_due",
                "1 when the printer asks for cleaning",
            )?
            .encode_gauge(&u64::from(due))?;
        }
        self.forecast(e)
    }

    /// The supplies forecast: per supply (and feeder) what is left, its
    /// threshold, its level and the hours left at the recent rate.
    fn forecast(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(fc) = &self.published.forecast else {
            return Ok(());
        };
        let labels = |s: &SupplyForecast| {
            let mut l = vec![("supply", s.supply.to_string())];
            if let Some(n) = s.feeder {
                l.push(("feeder", n.to_string()));
            }
            l
        };
        let mut f = gauge(
            e,
            "satellite_supply_left",
            "What is left of each supply: cards (ribbon, feeder, cleaning: cards until required) or free slots (reject_box); absent while unknown",
        )?;
        for s in &fc.supplies {
            if let Some(n) = s.left {
                f.encode_family(&labels(s))?.encode_gauge(&n)?;
            }
        }
        let mut f = gauge(
            e,
            "satellite_supply_warn_at",
            "The configured threshold ([supplies]): a supply at or below it raises its warning",
        )?;
        for s in &fc.supplies {
            f.encode_family(&labels(s))?.encode_gauge(&s.warn_at)?;
        }
        let mut f = gauge(
            e,
            "satellite_supply_level",
            "Each supply's level: ok, warning (at or below its threshold), exhausted (production stops for the cards that need it) or unknown; 1 for the current level",
        )?;
        for s in &fc.supplies {
            let now = s.level();
            for level in SUPPLY_LEVELS {
                let mut l = labels(s);
                l.push(("level", level.to_string()));
                set(&mut f, &l, level == now)?;
            }
        }
        let mut f = gauge(
            e,
            "satellite_supply_time_left_seconds",
            "Time until each supply runs out at the recent production rate (the status document says it in hours); absent while unknown or with no recent production",
        )?;
        for s in &fc.supplies {
            if let Some(h) = s.hours_left {
                f.encode_family(&labels(s))?.encode_gauge(&(h * 3600.0))?;
            }
        }
        let mut f = gauge(
            e,
            "satellite_production_rate_cards_per_hour",
            "Blank cards taken (kind=cards) and cards rejected (kind=rejects) per hour over [supplies] rate_window_hours",
        )?;
        for (kind, r) in [
            ("cards", fc.rate.cards_per_hour),
            ("rejects", fc.rate.rejects_per_hour),
        ] {
            f.encode_family(&[("kind", kind)])?
                .encode_gauge(&r.unwrap_or(0.0))?;
        }
        Ok(())
    }

    /// The queue, the outbox per sink and the store's size.
    fn store(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(store) = &self.published.store else {
            return Ok(());
        };
        gauge(
            e,
            "satellite_queue_depth",
            "Cards accepted and waiting for production (READY)",
        )?
        .encode_gauge(&store.queued)?;
        if !store.outbox.is_empty() {
            let mut f = gauge(
                e,
                "satellite_outbox_depth",
                "Status changes waiting for delivery to each sink (pending; an inactive sink's wait until it is configured again)",
            )?;
            for s in &store.outbox {
                f.encode_family(&[("sink", s.sink.as_str())])?
                    .encode_gauge(&s.pending)?;
            }
            let mut f = gauge(
                e,
                "satellite_outbox_dead_letters",
                "Status changes a sink refused for good, waiting for satellite outbox replay",
            )?;
            for s in &store.outbox {
                f.encode_family(&[("sink", s.sink.as_str())])?
                    .encode_gauge(&s.dead)?;
            }
            let mut f = gauge(
                e,
                "satellite_outbox_parked",
                "Status changes that failed on their own too often or for too long, waiting for satellite outbox replay",
            )?;
            for s in &store.outbox {
                f.encode_family(&[("sink", s.sink.as_str())])?
                    .encode_gauge(&s.parked)?;
            }
            let mut f = gauge(
                e,
                "satellite_outbox_held",
                "Pending status changes waiting behind an earlier dead or parked one of their card",
            )?;
            for s in &store.outbox {
                f.encode_family(&[("sink", s.sink.as_str())])?
                    .encode_gauge(&s.held)?;
            }
            let mut f = gauge(
                e,
                "satellite_outbox_disabled",
                "1 when a sink is disabled (its receiver answered 410 Gone) until satellite outbox enable",
            )?;
            for s in &store.outbox {
                let disabled = u64::from(s.disabled.is_some());
                f.encode_family(&[("sink", s.sink.as_str())])?
                    .encode_gauge(&disabled)?;
            }
            let mut f = gauge(
                e,
                "satellite_outbox_oldest_age_seconds",
                "Age of the oldest status change waiting for each sink; 0 when none waits",
            )?;
            for s in &store.outbox {
                let age = s
                    .oldest_pending_at
                    .as_deref()
                    .and_then(|t| humantime::parse_rfc3339(t).ok())
                    .and_then(|t| self.at.duration_since(t).ok())
                    .map_or(0.0, |d| d.as_secs_f64());
                f.encode_family(&[("sink", s.sink.as_str())])?
                    .encode_gauge(&age)?;
            }
        }
        gauge(
            e,
            "satellite_store_used_bytes",
            "Bytes in use in the store's database (pages less free ones)",
        )?
        .encode_gauge(&store.used_bytes)?;
        gauge(
            e,
            "satellite_store_limit_bytes",
            "The store's size limit ([upstream] store_limit_mb): new requests are refused there, an alarm is logged at 80 %; 0 for none",
        )?
        .encode_gauge(&store.limit_bytes)?;
        Ok(())
    }
}

/// Starts a gauge family.
fn gauge<'s>(
    e: &'s mut DescriptorEncoder,
    name: &'s str,
    help: &str,
) -> Result<MetricEncoder<'s>, std::fmt::Error> {
    e.encode_descriptor(name, help, None, MetricType::Gauge)
}

/// One series of a state set: 1 when `on`.
fn set(
    f: &mut MetricEncoder,
    labels: &impl EncodeLabelSet,
    on: bool,
) -> Result<(), std::fmt::Error> {
    f.encode_family(labels)?.encode_gauge(&u64::from(on))
}

/// Feeders are numbered from 1.
fn feeder_label(index: usize) -> String {
    (index + 1).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes::ErrorCode;
    use crate::metrics::published::{PrinterNow, StoreNow};
    use crate::metrics::Delivery;
    use crate::store::{SinkDepth, Status};
    use crate::upstream::health::LinkHealth;
    use prometheus_client::encoding::prometheus_text;
    use prometheus_client::registry::Registry;
    use std::collections::BTreeMap;
    use std::time::Duration;

    fn render(s: Scrape) -> String {
        let mut r = Registry::default();
        r.register_collector(Box::new(s));
        let mut text = String::new();
        prometheus_text::encode(&mut text, &r).unwrap();
        text
    }

    fn published() -> Published {
        let at = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut links = BTreeMap::new();
        links.insert(
            "issuer".to_string(),
            LinkHealth {
                state: "down",
                code: Some(ErrorCode::SAT_SERVER_NOT_REACHABLE),
                error: Some("refused".into()),
                last_ok_at: None,
                since: crate::time::rfc3339(at),
                clock_skew_ms: None,
                alarms: Vec::new(),
            },
        );
        Published {
            activity: Activity::CardInDoubt {
                card: "tok-secret".into(),
                step: None,
                code: ErrorCode::PRD_REJECT_FULL,
                reason: "reject box full".into(),
                technician: true,
            },
            printer: PrinterNow {
                state: "not_ready",
                reasons: [
                    ("reject-area-full".to_string(), true),
                    ("cover-open".to_string(), false),
                ]
                .into_iter()
                .collect(),
                faults: [
                    (ErrorCode::PRD_REJECT_FULL, true),
                    (ErrorCode::PRT_COVER_OPEN, false),
                ]
                .into_iter()
                .collect(),
                reading_age: Some(Duration::from_millis(1500)),
                feeders: Some(vec![(true, true), (false, true)]),
                ribbon_cards_left: Some(42),
                reject_box_full: Some(true),
                cleaning_due: None,
                connections: 3,
            },
            links,
            store: Some(StoreNow {
                queued: 4,
                in_progress: 1,
                outbox: vec![SinkDepth {
                    sink: "odd \"sink\"\\".into(),
                    kind: "webhook".into(),
                    active: true,
                    pending: 5,
                    held: 2,
                    dead: 1,
                    parked: 1,
                    oldest_pending_at: Some(crate::time::rfc3339(at - Duration::from_secs(90))),
                    last_error: Some("HTTP 503".into()),
                    error_since: None,
                    disabled: None,
                }],
                used_bytes: 4096,
                limit_bytes: 8192,
                stock: vec![],
            }),
            forecast: None,
        }
    }

    #[test]
    fn published_state_is_written_as_state_sets_and_gauges() {
        let at = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let text = render(Scrape {
            events: Metrics::default(),
            published: published(),
            at,
        });
        for line in [
            r#"satellite_engine_state{state="card_in_doubt"} 1"#,
            r#"satellite_engine_state{state="idle"} 0"#,
            "satellite_cards_in_doubt 1",
            "satellite_technician_needed 1",
            r#"satellite_printer_state{state="not_ready"} 1"#,
            r#"satellite_printer_state{state="ready"} 0"#,
            r#"satellite_printer_reason{reason="reject-area-full"} 1"#,
            r#"satellite_printer_reason{reason="cover-open"} 0"#,
            r#"satellite_printer_fault{code="PRD_REJECT_FULL"} 1"#,
            r#"satellite_printer_fault{code="PRT_COVER_OPEN"} 0"#,
            "satellite_printer_reading_age_seconds 1.5",
            "satellite_printer_reconnects_total 2",
            r#"satellite_feeder_empty{feeder="1"} 1"#,
            r#"satellite_feeder_empty{feeder="2"} 0"#,
            r#"satellite_feeder_near_empty{feeder="2"} 1"#,
            "satellite_ribbon_remaining_cards 42",
            "satellite_reject_box_full 1",
            "satellite_queue_depth 4",
            // Label values escaped as the format says.
            r#"satellite_outbox_depth{sink="odd \"sink\"\\"} 5"#,
            r#"satellite_outbox_dead_letters{sink="odd \"sink\"\\"} 1"#,
            r#"satellite_outbox_oldest_age_seconds{sink="odd \"sink\"\\"} 90.0"#,
            "satellite_store_used_bytes 4096",
            "satellite_store_limit_bytes 8192",
            r#"satellite_upstream_link_state{link="issuer",state="down"} 1"#,
            r#"satellite_upstream_link_state{link="issuer",state="up"} 0"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} not in\n{text}");
        }
        // Unknown is left out rather than guessed.
        assert!(!text.contains("satellite_printer_cleaning_due"), "{text}");
        // The card in doubt is named by the API, never by a label.
        assert!(!text.contains("tok-secret"), "{text}");
    }

    #[test]
    fn the_supplies_forecast_is_one_series_per_supply_with_bounded_labels() {
        use crate::engine::forecast::{forecast, Inputs, Rate};
        use crate::store::{FeederStock, Usage};
        let mut reading = crate::printer::snapshot::Snapshot::empty(
            None,
            &crate::printer::Profile::load("evolis-km500b", None).unwrap(),
        );
        reading.ribbon_cards_left = Some(12);
        let stock = [FeederStock {
            feeder: 1,
            card_type: "debit".into(),
            count: 30,
            set_at: String::new(),
        }];
        let thresholds = crate::config::SuppliesConfig::default();
        let fc = forecast(&Inputs {
            reading: Some(&reading),
            stock: &stock,
            feeders: 2,
            reject_capacity: Some(20),
            cleaning_rule: None,
            reject_mark: None,
            cleaning_mark: None,
            rate: Rate::of(
                Usage {
                    taken: 24,
                    rejected: 0,
                },
                6,
            ),
            thresholds: &thresholds,
        });
        let mut p = published();
        p.forecast = Some(fc);
        let text = render(Scrape {
            events: Metrics::default(),
            published: p,
            at: std::time::SystemTime::now(),
        });
        for line in [
            r#"satellite_supply_left{supply="ribbon"} 12"#,
            r#"satellite_supply_left{supply="feeder",feeder="1"} 30"#,
            r#"satellite_supply_warn_at{supply="ribbon"} 50"#,
            r#"satellite_supply_level{supply="ribbon",level="warning"} 1"#,
            r#"satellite_supply_level{supply="ribbon",level="ok"} 0"#,
            r#"satellite_supply_level{supply="feeder",feeder="2",level="unknown"} 1"#,
            r#"satellite_supply_level{supply="cleaning",level="unknown"} 1"#,
            r#"satellite_supply_time_left_seconds{supply="ribbon"} 10800.0"#,
            r#"satellite_production_rate_cards_per_hour{kind="cards"} 4.0"#,
            r#"satellite_production_rate_cards_per_hour{kind="rejects"} 0.0"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} not in\n{text}");
        }
        // Unknown is left out rather than guessed.
        assert!(
            !text.contains(r#"satellite_supply_left{supply="cleaning"}"#),
            "{text}"
        );
    }

    #[test]
    fn every_family_has_help_and_a_type_and_counters_end_in_total() {
        let events = Metrics::default();
        events.card_final(Status::ProductionError, Some(ErrorCode::PRD_MAGSTRIPE));
        events.step(crate::engine::plan::Step::Insert, Duration::from_millis(30));
        events.delivery(
            "issuer",
            Delivery::Delivered,
            Some(Duration::from_millis(4)),
        );
        let text = render(Scrape {
            events,
            published: published(),
            at: std::time::SystemTime::now(),
        });
        let mut helped = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').unwrap();
                assert!(help.len() > 10, "{line}");
                assert!(name.starts_with("satellite_"), "{line}");
                helped.insert(name.to_string());
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(helped.contains(name), "no HELP before {line}");
                assert_eq!(kind == "counter", name.ends_with("_total"), "{line}");
            }
        }
        for line in [
            r#"satellite_cards_finished_total{status="PRODUCTION_ERROR",code="PRD_MAGSTRIPE"} 1"#,
            r#"satellite_cards_finished_total{status="PRODUCED",code=""} 0"#,
            r#"satellite_step_duration_seconds_bucket{step="insert",le="0.05"} 1"#,
            r#"satellite_step_duration_seconds_bucket{step="insert",le="0.025"} 0"#,
            r#"satellite_upstream_deliveries_total{sink="issuer",outcome="delivered"} 1"#,
            r#"satellite_upstream_delivery_latency_seconds_count{sink="issuer"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} not in\n{text}");
        }
    }
}
