//! `GET /metrics` on a running kiosk: the daemon with its real store, the
//! simulator over a real pseudo-terminal recording every frame it receives,
//! and the reference central base with an issuer webhook on loopback. Cards
//! are produced, fail with a known code, wait behind an open cover, are
//! cancelled and refused; the scrape, read through the Unix socket, must
//! say so, pass `promtool check metrics` (Debian's `prometheus` package,
//! installed by scripts/test.sh), hold no card token, and never add a
//! frame on the printer's link.

mod common;

use common::kiosk;
use common::upstream as up;
use printer_sim::upstream::{Fault, Group, StubHandle};
use printer_sim::Condition;
use satellite::api::client::Client;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One scrape, parsed.
struct Scraped {
    text: String,
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Scraped {
    /// The value of the series with exactly these labels.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples
            .iter()
            .find(|(n, l, _)| n == name && *l == want)
            .map(|(_, _, v)| *v)
    }

    /// The same, which must be there.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no series {name}{labels:?} in the scrape:\n{}", self.text))
    }

    /// The labels (of `key`) of a state set's series at 1.
    fn on(&self, name: &str, key: &str) -> Vec<String> {
        self.samples
            .iter()
            .filter(|(n, _, v)| n == name && *v == 1.0)
            .filter_map(|(_, l, _)| l.get(key).cloned())
            .collect()
    }
}

/// Parses the Prometheus text format as the agent writes it: one sample a
/// line, `name{k="v",...} value`, comments apart.
fn parse(text: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line:?}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value: {line:?}")),
        };
        let (name, mut rest) = match series.split_once('{') {
            Some((n, r)) => (n, r.strip_suffix('}').expect("labels close")),
            None => (series, ""),
        };
        let mut labels = BTreeMap::new();
        while !rest.is_empty() {
            let (key, after) = rest.split_once("=\"").expect("a label");
            let mut v = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                match chars.next().expect("a closing quote") {
                    (_, '\\') => match chars.next().expect("an escape").1 {
                        'n' => v.push('\n'),
                        c => v.push(c),
                    },
                    (i, '"') => break i,
                    (_, c) => v.push(c),
                }
            };
            labels.insert(key.to_string(), v);
            rest = after[end + 1..].trim_start_matches(',');
        }
        out.push((name.to_string(), labels, value));
    }
    out
}

async fn scrape(client: &Client) -> Scraped {
    let (status, content_type, text) = client.get_text("/metrics").await.unwrap();
    assert_eq!(status, 200, "{text}");
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    Scraped {
        samples: parse(&text),
        text,
    }
}

/// Scrapes until `f` holds (bounded).
async fn scrape_until(client: &Client, what: &str, f: impl Fn(&Scraped) -> bool) -> Scraped {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = scrape(client).await;
        if f(&s) {
            return s;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting for: {what}\n{}", s.text);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `promtool check metrics` on `text`: its complaints, or empty when clean.
/// promtool missing fails the test, unless SATELLITE_SKIP_PROMTOOL=1 (CI
/// installs it: scripts/test.sh).
fn promtool(text: &str) -> Option<String> {
    if std::env::var("SATELLITE_SKIP_PROMTOOL").as_deref() == Ok("1") {
        eprintln!("SATELLITE_SKIP_PROMTOOL=1: promtool check metrics not run");
        return None;
    }
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "promtool cannot be run ({e}): install Debian's `prometheus` package \
                 (scripts/test.sh does, as root), or set SATELLITE_SKIP_PROMTOOL=1 to skip \
                 this check on purpose"
            )
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(if out.status.success() && said.trim().is_empty() {
        String::new()
    } else {
        format!("exit {}: {said}", out.status)
    })
}

/// Frames the simulator received, from its transcript.
fn frames_in(transcript: &Path) -> usize {
    std::fs::read_to_string(transcript)
        .unwrap()
        .lines()
        .filter(|l| l.contains(r#""dir":"in""#))
        .count()
}

struct Rig {
    kiosk: kiosk::Parts,
    stub: StubHandle,
    transcript: PathBuf,
    _frames: tempfile::TempDir,
}

/// The kiosk with the central base and an issuer webhook as sinks (no
/// intake), the simulator recording its frames, feeder 1 stocked.
async fn rig() -> Rig {
    let stub = up::stub().await;
    let frames = tempfile::tempdir().unwrap();
    let transcript = frames.path().join("printer.jsonl");
    let record = transcript.clone();
    let kiosk = kiosk::start(
        move |s| s.record = Some(record),
        |dir, c| {
            c.printer.timeouts.take = Some(1500);
            // A silent printer is declared down after two unanswered commands.
            c.printer.timeouts.command = Some(1000);
            c.upstream = up::config(dir, &stub, &["cb", "webhook"], false);
        },
    )
    .await;
    kiosk::stock(&kiosk.client).await;
    Rig {
        kiosk,
        stub,
        transcript,
        _frames: frames,
    }
}

async fn submit(client: &Client, body: &Value) -> (u16, Value) {
    let a = client
        .post("/v1/cards", body.to_string().as_bytes())
        .await
        .unwrap();
    (a.status, a.body)
}

async fn final_state(client: &Client, token: &str) -> Value {
    for _ in 0..600 {
        let a = client
            .get(&format!("/v1/cards/{token}/production"))
            .await
            .unwrap();
        if matches!(
            a.body["status"].as_str(),
            Some("PRODUCED" | "PRODUCTION_ERROR" | "REQUEST_ERROR" | "CANCELLED")
        ) {
            return a.body;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    panic!("{token} never reached a final status");
}

fn request(token: &str, i: u32) -> Value {
    up::request(token, &up::pan(i))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_shows_cards_queue_printer_and_outbox_and_passes_promtool() {
    let r = rig().await;
    let (client, sim, stub) = (&r.kiosk.client, &r.kiosk.sim, r.stub.control());
    let (outbox, cards) = ("satellite_outbox_depth", "satellite_cards_finished_total");
    let cb = [("sink", "central-base")];
    let issuer = [("sink", "issuer")];

    // Produced; every sink has it.
    assert_eq!(submit(client, &request("tok-m-produced", 1)).await.0, 201);
    assert_eq!(
        final_state(client, "tok-m-produced").await["status"],
        "PRODUCED"
    );
    scrape_until(client, "both sinks up to date", |m| {
        m.get(outbox, &cb) == Some(0.0) && m.get(outbox, &issuer) == Some(0.0)
    })
    .await;

    // From here the issuer's webhook answers 503: its status changes wait.
    stub.set_fault(Group::Webhook, Fault::Status(503), None)
        .await;

    // A printer fault with a known code.
    sim.raise("mag-read-mismatch".parse::<Condition>().unwrap());
    assert_eq!(submit(client, &request("tok-m-failed", 2)).await.0, 201);
    let failed = final_state(client, "tok-m-failed").await;
    assert_eq!(failed["errorCode"], "PRD_MAGSTRIPE", "{failed}");
    sim.clear(None);

    // The cover open: cards wait in the queue; one is cancelled; one is
    // refused at validation.
    sim.raise("cover-open".parse::<Condition>().unwrap());
    scrape_until(client, "the printer not ready", |m| {
        m.get("satellite_printer_state", &[("state", "not_ready")]) == Some(1.0)
    })
    .await;
    for (token, i) in [("tok-m-queued", 3), ("tok-m-cancelled", 4)] {
        let (status, body) = submit(client, &request(token, i)).await;
        assert_eq!(
            (status, body["errorCode"].as_str()),
            (201, Some("REQUEST_CREATED_BUT_NOT_STARTED")),
            "{body}"
        );
    }
    let c = client
        .post("/v1/cards/tok-m-cancelled/cancel", b"")
        .await
        .unwrap();
    assert_eq!(c.status, 200, "{}", c.body);
    let mut other = request("tok-m-refused", 5);
    other["kioskId"] = "ANOTHER-KIOSK".into();
    let (status, body) = submit(client, &other).await;
    assert_eq!(
        (status, body["errorCode"].as_str()),
        (422, Some("KIOSK_ID_NOT_FOUND")),
        "{body}"
    );

    // The issuer's backlog: since its webhook fails, the failed card's
    // READY, IN_PROGRESS and PRODUCTION_ERROR, the queued card's READY,
    // the cancelled card's READY and CANCELLED, the refused one's
    // REQUEST_ERROR. The central base has everything.
    let m = scrape_until(
        client,
        "the central base up to date, the issuer 7 behind",
        |m| m.get(outbox, &cb) == Some(0.0) && m.get(outbox, &issuer) == Some(7.0),
    )
    .await;
    let clean = promtool(&m.text);
    assert!(
        clean.as_deref().is_none_or(str::is_empty),
        "promtool check metrics: {}\n{}",
        clean.unwrap_or_default(),
        m.text
    );
    for (status, code, n) in [
        ("PRODUCED", "", 1.0),
        ("PRODUCTION_ERROR", "PRD_MAGSTRIPE", 1.0),
        ("CANCELLED", "", 1.0),
        ("REQUEST_ERROR", "KIOSK_ID_NOT_FOUND", 1.0),
    ] {
        assert_eq!(
            m.value(cards, &[("status", status), ("code", code)]),
            n,
            "{status} {code}\n{}",
            m.text
        );
    }
    assert_eq!(
        m.samples.iter().filter(|(n, _, _)| n == cards).count(),
        4,
        "no other card series:\n{}",
        m.text
    );
    assert_eq!(m.value("satellite_queue_depth", &[]), 1.0);
    assert_eq!(m.value("satellite_cards_in_doubt", &[]), 0.0);
    assert_eq!(m.value("satellite_technician_needed", &[]), 0.0);
    assert_eq!(
        m.on("satellite_engine_state", "state"),
        ["waiting_for_printer"]
    );
    assert_eq!(m.on("satellite_printer_state", "state"), ["not_ready"]);
    assert!(
        m.on("satellite_printer_reason", "reason")
            .contains(&"cover-open".to_string()),
        "{}",
        m.text
    );
    assert_eq!(m.on("satellite_printer_fault", "code"), ["PRT_COVER_OPEN"]);
    let age = m.value("satellite_outbox_oldest_age_seconds", &issuer);
    assert!(age > 0.0 && age < 120.0, "oldest age {age}");
    assert_eq!(m.value("satellite_outbox_oldest_age_seconds", &cb), 0.0);
    assert_eq!(m.value("satellite_outbox_dead_letters", &issuer), 0.0);
    // Two cards went in: one produced, one rejected after its magnetic step.
    let steps = "satellite_step_duration_seconds_count";
    assert_eq!(m.value(steps, &[("step", "insert")]), 2.0);
    assert_eq!(m.value(steps, &[("step", "taken")]), 1.0);
    assert_eq!(m.value(steps, &[("step", "reject")]), 1.0);
    assert_eq!(
        m.value(
            "satellite_step_duration_seconds_bucket",
            &[("step", "insert"), ("le", "+Inf")]
        ),
        2.0
    );
    assert!(
        m.value(
            "satellite_upstream_deliveries_total",
            &[("sink", "issuer"), ("outcome", "retry")]
        ) >= 1.0
    );
    assert_eq!(
        m.value(
            "satellite_feeder_stock_cards",
            &[("feeder", "1"), ("card_type", "debit")]
        ),
        18.0,
        "20 set, two cards taken from the feeder"
    );
    assert!(m.value("satellite_store_used_bytes", &[]) > 0.0);
    assert_eq!(m.value("satellite_printer_reconnects_total", &[]), 0.0);
    assert_eq!(
        m.on("satellite_upstream_link_state", "link"),
        ["central-base", "central-base-api", "issuer"],
        "every link up (a 503 is an answer)"
    );
    // No card token, no card number: labels come from fixed vocabularies.
    for (i, token) in [
        "tok-m-produced",
        "tok-m-failed",
        "tok-m-queued",
        "tok-m-cancelled",
        "tok-m-refused",
    ]
    .iter()
    .enumerate()
    {
        assert!(!m.text.contains(token), "{token} in the scrape");
        assert!(
            !m.text.contains(&up::pan(i as u32 + 1)),
            "a PAN in the scrape"
        );
    }

    // The cover closed and the webhook back: the queued card is produced
    // and every status change reaches both sinks, each counted once.
    // Three status changes per produced card, three for the failed one,
    // two for the cancelled one, one for the refused one. A scrape reads
    // the store before it writes the counters, so a status change
    // committed in between shows in the counters but not yet in the
    // outbox depth: wait for the counts, then check nothing is left.
    sim.clear(None);
    stub.clear_faults(None).await;
    let delivered = |m: &Scraped, sink: &str| {
        m.get(
            "satellite_upstream_deliveries_total",
            &[("sink", sink), ("outcome", "delivered")],
        )
        .unwrap_or(0.0)
    };
    let m = scrape_until(client, "the queue empty and both sinks up to date", |m| {
        m.get("satellite_queue_depth", &[]) == Some(0.0)
            && m.get(cards, &[("status", "PRODUCED"), ("code", "")]) == Some(2.0)
            && delivered(m, "central-base") >= 12.0
            && delivered(m, "issuer") >= 12.0
            && m.get(outbox, &cb) == Some(0.0)
            && m.get(outbox, &issuer) == Some(0.0)
    })
    .await;
    for sink in ["central-base", "issuer"] {
        let delivered = [("sink", sink), ("outcome", "delivered")];
        assert_eq!(
            m.value("satellite_upstream_deliveries_total", &delivered),
            12.0,
            "{sink}\n{}",
            m.text
        );
        assert_eq!(
            m.value(
                "satellite_upstream_delivery_latency_seconds_count",
                &[("sink", sink)]
            ),
            12.0
        );
    }
    assert_eq!(m.on("satellite_engine_state", "state"), ["idle"]);
    assert_eq!(m.on("satellite_printer_state", "state"), ["ready"]);
    assert!(
        m.on("satellite_printer_fault", "code").is_empty(),
        "{}",
        m.text
    );
    r.kiosk.daemon.stop().await;
}

/// A scrape reads the printer's published view: it sends nothing on the
/// link, and shows the link down while it is. The simulator's
/// transcript counts every frame it receives; the monitor's own probes
/// (about one a second, a full reading every 15 s) are the only traffic
/// while the kiosk is idle, and a call that does read the printer
/// (`/v1/printer?fresh=true`) shows in the count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_never_talks_to_the_printer() {
    let r = rig().await;
    let client = &r.kiosk.client;
    scrape_until(client, "the printer ready", |m| {
        m.get("satellite_printer_state", &[("state", "ready")]) == Some(1.0)
    })
    .await;

    // The control: reading the printer shows on the link.
    let before = frames_in(&r.transcript);
    for _ in 0..3 {
        let a = client.get("/v1/printer?fresh=true").await.unwrap();
        assert_eq!(a.status, 200, "{}", a.body);
    }
    let full = (frames_in(&r.transcript) - before).div_ceil(3);
    assert!(full >= 5, "a full reading is {full} frames");

    let scrapes = 300;
    let before = frames_in(&r.transcript);
    let began = Instant::now();
    for _ in 0..scrapes {
        scrape(client).await;
    }
    let took = began.elapsed();
    let sent = frames_in(&r.transcript) - before;
    // What the monitor may send meanwhile: a probe (status words, error
    // mode) every IDLE_PROBE, a full reading every FULL_EVERY, one more of
    // each for the edges.
    use satellite::printer::monitor::{FULL_EVERY, IDLE_PROBE};
    let probes = (took.as_secs_f64() / IDLE_PROBE.as_secs_f64()) as usize + 2;
    let fulls = (took.as_secs_f64() / FULL_EVERY.as_secs_f64()) as usize + 1;
    let monitor = probes * 4 + fulls * full;
    assert!(
        scrapes > 2 * monitor,
        "{scrapes} scrapes took {took:?}: too slow to tell them from the monitor's {monitor} frames"
    );
    assert!(
        sent <= monitor,
        "{sent} frames during {scrapes} scrapes ({took:?}); the monitor alone sends at most {monitor}"
    );

    // The link down: the scrape still answers at once, from the view.
    r.kiosk
        .sim
        .raise("unreachable:3000".parse::<Condition>().unwrap());
    let m = scrape_until(client, "the printer offline", |m| {
        m.get("satellite_printer_state", &[("state", "offline")]) == Some(1.0)
    })
    .await;
    assert_eq!(
        m.on("satellite_printer_fault", "code"),
        ["PRT_NOT_REACHABLE"]
    );
    assert_eq!(m.on("satellite_printer_reason", "reason"), ["offline"]);
    // It comes back by itself: one reconnection.
    let m = scrape_until(client, "the printer back", |m| {
        m.get("satellite_printer_state", &[("state", "ready")]) == Some(1.0)
    })
    .await;
    assert_eq!(m.value("satellite_printer_reconnects_total", &[]), 1.0);
    r.kiosk.daemon.stop().await;
}
