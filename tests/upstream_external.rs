//! Our upstream output judged by implementations we did not write. The
//! kiosk (daemon, simulator, reference central base: tests/common/upstream.rs)
//! runs cards through every sink; then what the stub received goes to Python
//! tools (tests/tools/) built on PyPI libraries:
//!
//! * webhook deliveries, exactly as received, to `standardwebhooks`
//!   (`Webhook(secret).verify`), with each secret of the sender on its own;
//! * D1 Track Card bodies to openapi-schema-validator (and plain draft 4
//!   `jsonschema`) against the vendor's D1 OpenAPI document;
//! * central-base envelopes and webhook bodies to `jsonschema` against
//!   tests/schemas/.
//!
//! The stub's own verifier and our signer share their author; these do not.
//! Negative controls show each tool can fail. The tools run in the venv
//! `target/pyvenv` that scripts/pyenv.sh makes (scripts/test.sh runs it
//! first): when it is missing and cannot be made, the tests fail, they never
//! skip.

mod common;

use common::upstream::{self as up, cb_events, distinct, final_state, request, until};
use printer_sim::upstream::StubHandle;
use printer_sim::Condition;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The secret the stub holds and the default sender signs with.
const OLD: &str = up::WEBHOOK_SECRET;
/// The secret a rotation brings in.
const NEW: &str = "whsec_c2F0ZWxsaXRlIGV4dGVybmFsIHJvdGF0aW9uIGtleSE=";
/// A secret no sender here holds.
const STRANGER: &str = "whsec_YSBzZWNyZXQgbm8gc2VuZGVyIGhlcmUgZXZlciBoYWQ=";

fn repo() -> &'static Path {
    common::python::repo()
}

/// The venv's Python (tests/common/python.rs makes the venv when needed).
fn python() -> PathBuf {
    common::python::venv_bin().join("python")
}

/// What a tool said.
struct Ran {
    ok: bool,
    out: String,
}

/// Runs tests/tools/`script` with `args`, one JSON value a line on stdin.
async fn tool(script: &str, args: &[&str], lines: &[Value]) -> Ran {
    let script = repo().join("tests/tools").join(script);
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = Command::new(python())
            .arg(&script)
            .args(&args)
            .current_dir(repo())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        Ran {
            ok: out.status.success(),
            out: format!(
                "{} ({}): {}{}",
                script.display(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    })
    .await
    .unwrap()
}

async fn passes(script: &str, args: &[&str], lines: &[Value]) -> String {
    let r = tool(script, args, lines).await;
    assert!(r.ok, "an external check failed on our output: {}", r.out);
    eprintln!("{}", r.out.trim_end());
    r.out
}

async fn fails(script: &str, args: &[&str], lines: &[Value], why: &str) {
    let r = tool(script, args, lines).await;
    assert!(!r.ok, "the negative control passed: {}", r.out);
    assert!(r.out.contains(why), "expected {why:?} in: {}", r.out);
    eprintln!("negative control, as expected: {}", r.out.trim_end());
}

/// Every webhook delivery the stub received, for verify_webhooks.py, to be
/// verified with each of `secrets` alone.
fn deliveries(stub: &StubHandle, secrets: &[&str]) -> Vec<Value> {
    stub.control()
        .webhooks()
        .into_iter()
        .map(|w| {
            json!({
                "secrets": secrets,
                "id": w.webhook_id,
                "timestamp": w.webhook_timestamp,
                "signature": w.webhook_signature,
                "body": w.body,
            })
        })
        .collect()
}

async fn submit(k: &up::Upstreamed, body: &Value) -> (u16, Value) {
    let a = k
        .kiosk
        .client
        .post("/v1/cards", body.to_string().as_bytes())
        .await
        .unwrap();
    (a.status, a.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sink_passes_the_external_checkers_failures_included() {
    // Fail now, not after the kiosk ran, when the checkers cannot be had.
    python();
    let k = up::start(&["cb", "webhook", "d1"], false, |_| {}).await;
    let sim = &k.kiosk.sim;
    // Two good cards.
    for (i, t) in ["ext-ok-0", "ext-ok-1"].iter().enumerate() {
        let (s, b) = submit(&k, &request(t, &up::pan(40 + i as u32))).await;
        assert_eq!(s, 201, "{b}");
        assert_eq!(final_state(&k.kiosk.client, t).await["status"], "PRODUCED");
    }
    // A printer fault: PRODUCTION_ERROR with a PRD_ code.
    sim.raise("mag-read-mismatch".parse::<Condition>().unwrap());
    let (s, b) = submit(&k, &request("ext-fault", &up::pan(42))).await;
    assert_eq!(s, 201, "{b}");
    let p = final_state(&k.kiosk.client, "ext-fault").await;
    assert_eq!(p["errorCode"], "PRD_MAGSTRIPE", "{p}");
    sim.clear(None);
    // Cancelled by the issuer while it waits (the cover is open).
    sim.raise("cover-open".parse::<Condition>().unwrap());
    let (s, b) = submit(&k, &request("ext-cancel", &up::pan(43))).await;
    assert_eq!(s, 201, "{b}");
    let a = k
        .kiosk
        .client
        .post("/v1/cards/ext-cancel/cancel", b"")
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.body);
    sim.clear(None);
    let p = final_state(&k.kiosk.client, "ext-cancel").await;
    assert_eq!(
        (p["status"].as_str(), p["errorCode"].as_str()),
        (Some("REQUEST_ERROR"), Some("UNKNOWN_ERROR")),
        "{p}"
    );
    // Refused at validation (a PAN failing Luhn): REQUEST_ERROR with a code.
    let mut bad = request("ext-bad", &up::pan(44));
    bad["pan"] = json!("4000001234567801");
    let (s, b) = submit(&k, &bad).await;
    assert_eq!(s, 422, "{b}");

    let finals = [
        ("ext-ok-0", "PRODUCED"),
        ("ext-ok-1", "PRODUCED"),
        ("ext-fault", "PRODUCTION_ERROR"),
        ("ext-cancel", "REQUEST_ERROR"),
        ("ext-bad", "REQUEST_ERROR"),
    ];
    for (t, last) in finals {
        until(
            &format!("{t}'s final status at the central base"),
            60,
            || distinct(&cb_events(&k.stub, t)).last().map(String::as_str) == Some(last),
        )
        .await;
    }
    let c = k.stub.control();
    let changes: usize = finals
        .iter()
        .map(|(t, _)| distinct(&cb_events(&k.stub, t)).len())
        .sum();
    until("one webhook per status change", 30, || {
        let ids: std::collections::HashSet<String> =
            c.webhooks().into_iter().map(|w| w.webhook_id).collect();
        ids.len() == changes
    })
    .await;
    until("D1 tracks of the produced cards", 30, || {
        c.d1_tracks().len() >= 2
    })
    .await;

    // Webhook signatures, by standardwebhooks.
    let signed = deliveries(&k.stub, &[OLD]);
    passes("verify_webhooks.py", &[], &signed).await;
    // Webhook bodies and central-base envelopes, by jsonschema.
    let bodies: Vec<Value> = c
        .webhooks()
        .iter()
        .map(|w| serde_json::from_str(&w.body).unwrap())
        .collect();
    passes("validate_events.py", &["--webhook"], &bodies).await;
    let envelopes: Vec<Value> = c.events().into_iter().map(|e| e.envelope).collect();
    assert!(envelopes.len() >= changes, "{envelopes:?}");
    let statuses: std::collections::HashSet<&str> = envelopes
        .iter()
        .map(|e| e["operation"]["details"]["status"].as_str().unwrap())
        .collect();
    for s in [
        "CARD_PROD_REQUESTED",
        "CARD_PROD_DONE",
        "CARD_PROD_EXCEPTION",
        "DATA_EXCEPTION",
        "CARD_PROD_CANCELED",
    ] {
        assert!(statuses.contains(s), "no envelope with {s}: {statuses:?}");
    }
    passes("validate_events.py", &[], &envelopes).await;
    // D1 bodies, by openapi-schema-validator against the vendor's document.
    let tracks: Vec<Value> = c.d1_tracks().into_iter().map(|d| d.body).collect();
    passes("validate_d1.py", &[], &tracks).await;

    // Negative controls: the same tools on altered copies.
    let mut tampered = signed[0].clone();
    // One status changed, the signature kept: a forged delivery.
    let body = signed[0]["body"].as_str().unwrap();
    let forged = body.replacen("\"READY\"", "\"PRODUCED\"", 1);
    assert_ne!(forged, body, "the first delivery is a READY: {body}");
    tampered["body"] = json!(forged);
    fails(
        "verify_webhooks.py",
        &[],
        &[signed[1].clone(), tampered],
        "line 2",
    )
    .await;
    let mut stranger = signed[0].clone();
    stranger["secrets"] = json!([STRANGER]);
    fails(
        "verify_webhooks.py",
        &[],
        &[stranger],
        "No matching signature",
    )
    .await;
    let mut stale = signed[0].clone();
    stale["timestamp"] = json!("1614265330");
    fails("verify_webhooks.py", &[], &[stale], "too old").await;
    let mut extra = tracks[0].clone();
    extra["trackingNumber"] = json!("1Z999");
    fails("validate_d1.py", &[], &[extra], "Additional properties").await;
    let mut long_site = tracks[0].clone();
    long_site["productionSite"] = json!("K".repeat(51));
    fails("validate_d1.py", &[], &[long_site], "is too long").await;
    let mut env = envelopes[0].clone();
    env["production"]["note"] = json!("x");
    fails("validate_events.py", &[], &[env], "production/").await;
    let mut env = envelopes[0].clone();
    env["operation"]["status"] = json!("DONE");
    fails("validate_events.py", &[], &[env], "operation/status").await;
    k.kiosk.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_signs_with_both_secrets_each_verifies_alone() {
    python();
    let k = up::start(&["webhook"], false, |c| {
        // The new secret first, the old one (the stub's) kept meanwhile.
        let file = c.upstream.webhooks[0].secret_file.clone().unwrap();
        std::fs::write(
            &file,
            format!("{NEW}\n# old, until every receiver has the new one\n{OLD}\n"),
        )
        .unwrap();
    })
    .await;
    let tokens = ["rot-0", "rot-1"];
    for (i, t) in tokens.iter().enumerate() {
        let (s, b) = submit(&k, &request(t, &up::pan(50 + i as u32))).await;
        assert_eq!(s, 201, "{b}");
    }
    let c = k.stub.control();
    until("the webhooks of both cards", 60, || {
        let ids: std::collections::HashSet<String> =
            c.webhooks().into_iter().map(|w| w.webhook_id).collect();
        ids.len() == 6
    })
    .await;
    for w in c.webhooks() {
        assert_eq!(
            w.webhook_signature.split(' ').count(),
            2,
            "{}",
            w.webhook_signature
        );
    }
    // A receiver holding only the new secret, one holding only the old one.
    let out = passes("verify_webhooks.py", &[], &deliveries(&k.stub, &[NEW, OLD])).await;
    assert!(out.contains("deliveries verified"), "{out}");
    passes("verify_webhooks.py", &[], &deliveries(&k.stub, &[NEW])).await;
    // Not every secret passes: one the sender never had fails.
    fails(
        "verify_webhooks.py",
        &[],
        &deliveries(&k.stub, &[NEW, STRANGER]),
        "secret #2 of 2",
    )
    .await;
    k.kiosk.daemon.stop().await;
}
