//! Chip personalisation through the real PC/SC stack: pcscd, Debian's vpcd
//! reader driver, the simulator's virtual card (`printer_sim::chip::VpcdCard`)
//! and the agent's `PcscStation`.
//!
//! Needs pcscd running with vpcd: `bash scripts/pcscd-up.sh`. The test fails
//! (it does not skip) when pcscd is not reachable.
//!
//! Debian's vpcd offers two readers of one slot each: port 35963 is "Virtual
//! PCD 00 00" (the printer harness of `tests/common` plays its card there),
//! port 35964 is "Virtual PCD 00 01", used here so that the two suites do not
//! take each other's card. Every case runs in sequence inside one test. No case asserts on timing: waits
//! are on states (pcscd's view of the reader, the card's counters), with
//! generous bounds that only turn a hang into a failure.

use printer_sim::chip::{ChipFault, ChipStats, VpcdCard};
use satellite::chip::{
    self, ApduStep, ChipReport, ChipScript, PcscConfig, PcscStation, ReaderStatus,
};
use satellite::codes::{ErrorCode, Fault};
use std::time::{Duration, Instant};

const VPCD_ADDR: &str = "127.0.0.1:35964";
const READER: &str = "Virtual PCD 00 01";
const SETUP_HINT: &str = "start pcscd with vpcd: `bash scripts/pcscd-up.sh`";
/// Only guards against a hang.
const HANG_GUARD: Duration = Duration::from_secs(60);
const STATE_WAIT: Duration = Duration::from_secs(15);

fn station(card_wait_ms: u64) -> PcscStation {
    PcscStation::new(PcscConfig {
        reader: Some(READER.to_string()),
        card_wait_ms,
        apdu_timeout_ms: 5000,
    })
}

/// Six steps with recognisable bytes, to check that no fault shows them.
fn script() -> ChipScript {
    ChipScript::parse(
        "00A4040007A0000000031010/9000\n\
         80E2000007DF0102C0FFEE00/9000\n\
         80E2000107DF0202BADC0DE5/9000\n\
         00DA9F1B0412345678/9000\n\
         80E200020599887766AA/9000,6283\n\
         80E20003030A0B0C/9000",
    )
    .expect("the test script parses")
}

/// A script long enough to still run when the card misbehaves on purpose.
fn long_script() -> ChipScript {
    let step = |i: u32| {
        let [_, _, hi, lo] = i.to_be_bytes();
        ApduStep::expecting_9000(vec![0x80, 0xE2, 0x00, 0x00, 0x02, hi, lo])
    };
    ChipScript::new((0..200_000).map(step).collect())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// No command (nor its data field) appears in the fault.
fn assert_no_card_data(f: &Fault, script: &ChipScript) {
    let text = format!("{f} {f:?}").to_uppercase();
    for step in script.steps.iter().take(10) {
        let data = &step.command[5.min(step.command.len())..];
        for needle in [hex(&step.command), hex(data)] {
            assert!(
                needle.len() < 6 || !text.contains(&needle),
                "fault shows card data: {f}"
            );
        }
    }
}

fn assert_chip_error(f: &Fault) {
    assert_eq!(
        (f.code, f.reason.as_str()),
        (ErrorCode::PRD_SMARTCARD, "chip-error"),
        "{f}"
    );
}

async fn run(station: &PcscStation, script: &ChipScript) -> Result<ChipReport, Fault> {
    match tokio::time::timeout(HANG_GUARD, station.personalise(script)).await {
        Ok(result) => result,
        Err(_) => panic!("personalise did not return within {HANG_GUARD:?}"),
    }
}

/// pcscd answers and offers the vpcd reader; otherwise the test fails here.
async fn preflight() {
    let readers = match chip::readers().await {
        Ok(r) => r,
        Err(f) => panic!("pcscd is not reachable ({f}); {SETUP_HINT}"),
    };
    assert!(
        readers.iter().any(|r| r == READER),
        "pcscd does not offer the vpcd reader {READER:?} (it offers {readers:?}); \
         is vsmartcard-vpcd installed? {SETUP_HINT}"
    );
}

async fn reader_status() -> ReaderStatus {
    let statuses = chip::reader_statuses()
        .await
        .unwrap_or_else(|f| panic!("reader states: {f}; {SETUP_HINT}"));
    statuses
        .into_iter()
        .find(|s| s.name == READER)
        .unwrap_or_else(|| panic!("reader {READER:?} vanished"))
}

/// Waits until pcscd's view of the vpcd reader satisfies `want`.
async fn wait_reader(want: impl Fn(&ReaderStatus) -> bool, why: &str) {
    let deadline = Instant::now() + STATE_WAIT;
    loop {
        let status = reader_status().await;
        if want(&status) {
            return;
        }
        assert!(Instant::now() < deadline, "{why}: pcscd reports {status:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_empty(why: &str) {
    wait_reader(|s| !s.card_present, why).await;
}

/// Inserts the card off the async threads: a card put back soon after leaving
/// waits (as a physical one would) before it connects.
async fn insert(card: &VpcdCard) {
    let card = card.clone();
    tokio::task::spawn_blocking(move || card.insert())
        .await
        .expect("insert does not panic");
}

/// Waits until the card has answered at least `apdus` APDUs in all.
async fn wait_apdus(card: &VpcdCard, apdus: u64) {
    let deadline = Instant::now() + STATE_WAIT;
    while card.stats().apdus < apdus {
        assert!(
            Instant::now() < deadline,
            "the card never reached {apdus} APDUs: {:?}",
            card.stats()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chip_personalisation_through_pcscd_and_vpcd() {
    preflight().await;
    wait_empty("another virtual card holds the vpcd slot (another test run?)").await;
    let card = VpcdCard::new(VPCD_ADDR.parse().unwrap());
    let s = script();
    let n = s.steps.len() as u64;

    // No card under the contacts.
    let f = run(&station(300), &s)
        .await
        .expect_err("no card is inserted");
    assert_eq!(
        (f.code, f.reason.as_str()),
        (ErrorCode::PRD_SMARTCARD_CARD_NOT_IN_READER, "media-missing"),
        "{f}"
    );
    assert!(f.description.contains(READER), "{f}");

    // A cooperative card runs the whole script.
    insert(&card).await;
    assert!(
        card.stats().inserted,
        "the virtual card could not connect to vpcd at {VPCD_ADDR}; {SETUP_HINT}"
    );
    let report = run(&station(5000), &s)
        .await
        .expect("the cooperative card accepts the script");
    assert_eq!(
        report,
        ChipReport {
            steps_run: s.steps.len()
        }
    );
    assert_eq!(
        card.stats(),
        ChipStats {
            inserted: true,
            sessions: 1,
            apdus: n,
            last_sw: Some(0x9000)
        }
    );

    // An unexpected status word stops the script and names the step.
    card.set_fault(ChipFault::Status(0x6A80));
    let mut tolerant_first = script();
    tolerant_first.steps[0].expect_sw = vec![0x9000, 0x6A80];
    let f = run(&station(5000), &tolerant_first)
        .await
        .expect_err("step 2 refuses 6A80");
    assert_chip_error(&f);
    assert_eq!(f.description, "step 2 of 6 answered 6A80, expected 9000");
    assert_no_card_data(&f, &tolerant_first);
    assert_eq!(
        card.stats().apdus,
        n + 2,
        "the script stops at the first mismatch"
    );
    assert_eq!(card.stats().last_sw, Some(0x6A80));
    card.set_fault(ChipFault::None);

    // A mute card: an error at once, no APDU sent.
    card.remove();
    wait_empty("pcscd did not see the card leave").await;
    card.set_fault(ChipFault::Mute);
    insert(&card).await;
    let f = run(&station(5000), &s)
        .await
        .expect_err("a mute card fails");
    assert_chip_error(&f);
    assert_eq!(
        f.description,
        "chip did not answer to reset (unresponsive card)"
    );
    assert_no_card_data(&f, &s);
    assert_eq!(card.stats().apdus, n + 2, "nothing reaches a mute card");
    let status = reader_status().await;
    assert!(
        status.card_present && status.card_mute,
        "pcscd sees a mute card: {status:?}"
    );
    card.remove();
    card.set_fault(ChipFault::None);
    wait_empty("pcscd did not see the mute card leave").await;

    // The chip falls silent in the middle of a script.
    let long = long_script();
    insert(&card).await;
    let before = card.stats().apdus;
    let running = {
        let (station, long) = (station(5000), long.clone());
        tokio::spawn(async move { run(&station, &long).await })
    };
    wait_apdus(&card, before + 50).await;
    card.set_fault(ChipFault::Mute);
    let f = running.await.unwrap().expect_err("the chip went mute");
    assert_chip_error(&f);
    assert!(
        f.description
            .starts_with("chip did not answer (no status word) at step ")
            && f.description.ends_with(" of 200000"),
        "{f}"
    );
    assert_no_card_data(&f, &long);
    // The card stays under the contacts: pcscd sees it come back, mute.
    wait_reader(
        |s| s.card_present && s.card_mute,
        "pcscd did not see the mute card again",
    )
    .await;
    let f = run(&station(5000), &s).await.expect_err("still mute");
    assert_eq!(
        f.description,
        "chip did not answer to reset (unresponsive card)"
    );
    card.remove();
    card.set_fault(ChipFault::None);
    wait_empty("pcscd did not see the mute card leave").await;

    // The card leaves in the middle of a script.
    insert(&card).await;
    let before = card.stats().apdus;
    let running = {
        let (station, long) = (station(5000), long.clone());
        tokio::spawn(async move { run(&station, &long).await })
    };
    wait_apdus(&card, before + 50).await;
    card.remove();
    let f = running.await.unwrap().expect_err("the card left");
    assert_chip_error(&f);
    assert!(f.description.contains(" of 200000"), "{f}");
    assert_no_card_data(&f, &long);
    wait_empty("pcscd did not see the card leave").await;

    // Insert/remove cycles.
    let before = card.stats();
    for cycle in 1..=5u64 {
        insert(&card).await;
        let report = run(&station(5000), &s)
            .await
            .unwrap_or_else(|f| panic!("cycle {cycle}: {f}"));
        assert_eq!(report.steps_run, s.steps.len());
        let stats = card.stats();
        assert_eq!(
            stats.apdus,
            before.apdus + cycle * n,
            "cycle {cycle}: {stats:?}"
        );
        assert_eq!(
            stats.sessions,
            before.sessions + cycle,
            "cycle {cycle}: {stats:?}"
        );
        card.remove();
        assert!(!card.stats().inserted);
        wait_empty("pcscd did not see the card leave").await;
    }

    // Out again: no card.
    let f = run(&station(200), &s).await.expect_err("the card is out");
    assert_eq!(f.code, ErrorCode::PRD_SMARTCARD_CARD_NOT_IN_READER, "{f}");

    // An empty script needs no card at all.
    let empty = run(&station(200), &ChipScript::default()).await.unwrap();
    assert_eq!(empty, ChipReport { steps_run: 0 });

    // A reader that does not exist.
    let missing = PcscStation::new(PcscConfig {
        reader: Some("No Such Reader".into()),
        ..PcscConfig::default()
    });
    let one = ChipScript::new(vec![ApduStep::expecting_9000(vec![0x00, 0xA4, 0x04, 0x00])]);
    let f = run(&missing, &one).await.expect_err("no such reader");
    assert_eq!(
        (f.code, f.reason.as_str()),
        (ErrorCode::PRT_SETUP_ERROR, "smart-card-reader-missing"),
        "{f}"
    );
    assert!(
        f.description.contains(READER),
        "the fault lists the readers seen: {f}"
    );
}
