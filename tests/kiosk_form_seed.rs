//! Every kiosk-form body the agent can send (the production-status object:
//! alone in a webhook, inside an envelope of the central base's events
//! endpoint) for every status and code it can emit, validated by `jsonschema`
//! (PyPI) against a schema that tests/tools/validate_kiosk_form.py derives
//! from the seed's own field list (kiosk card production status). A
//! cancellation included: it has no status or code of its own in the seed,
//! and must still validate (docs/EVENT-FORMS.md). Negative controls show the
//! derived schema refuses what the seed does not allow.

mod common;

use common::python;
use satellite::codes::ErrorCode;
use satellite::store::{Event, Job, JobMeta, Status};
use satellite::upstream::forms::{self, Form};
use serde_json::{json, Value};

const AT: &str = "2025-01-21T09:28:12.492Z";

fn job() -> Job {
    Job {
        seq: 1,
        meta: JobMeta {
            card_token: "ca0c8154-1e14-4464-a1ce-dcea7dc3de52".into(),
            profile_id: 123456,
            kiosk_id: "WIS00001".into(),
            card_type: "VISA_DEBIT".into(),
            issuer_request_id: "req-42".into(),
            card_id: "271b-6e47-8ec3-7f3f".into(),
            pan_masked: "411111******1111".into(),
        },
        status: Status::Ready,
        step: None,
        error_code: None,
        description: None,
        occurred_at: AT.into(),
        created_at: AT.into(),
        deferred: false,
    }
}

fn event(status: Status, code: Option<ErrorCode>, description: Option<&str>) -> Event {
    Event {
        id: "5f0c6a51-8d1e-4a57-9b57-3f7e1f0b2d6a".into(),
        card_token: "ca0c8154-1e14-4464-a1ce-dcea7dc3de52".into(),
        seq: 3,
        status,
        step: None,
        error_code: code,
        description: description.map(str::to_string),
        occurred_at: AT.into(),
    }
}

/// The request codes: those a refusal at validation carries (every code
/// that is not a production code, and UNKNOWN_ERROR, listed under both).
fn request_codes() -> Vec<ErrorCode> {
    let production: Vec<ErrorCode> = ErrorCode::production_codes().collect();
    ErrorCode::ALL
        .iter()
        .copied()
        .filter(|c| *c == ErrorCode::UNKNOWN_ERROR || !production.contains(c))
        .collect()
}

/// Every event the agent can send upstream: each status, each error status
/// with each code of its list, without a code, with and without a
/// description of its own; a cancellation with and without one.
fn every_event() -> Vec<Event> {
    let mut out = Vec::new();
    for s in Status::ALL {
        out.push(event(s, None, None));
        out.push(event(s, None, Some("the event's own words")));
    }
    for c in ErrorCode::production_codes() {
        out.push(event(Status::ProductionError, Some(c), None));
        out.push(event(
            Status::ProductionError,
            Some(c),
            Some("printer said so"),
        ));
    }
    for c in request_codes() {
        out.push(event(Status::RequestError, Some(c), None));
        out.push(event(
            Status::RequestError,
            Some(c),
            Some("pan: not a card number"),
        ));
    }
    out
}

/// Each event's kiosk form, as sent: alone, in the envelope, in the webhook.
fn bodies() -> Vec<Value> {
    let j = job();
    let mut out = Vec::new();
    for e in every_event() {
        let alone = serde_json::to_value(forms::production_status(&j, &e)).unwrap();
        let env = serde_json::to_value(forms::envelope(&j, &e)).unwrap();
        let hook =
            serde_json::to_value(forms::webhook_body(Form::ProductionStatus, &j, &e)).unwrap();
        assert_eq!(env["production"], alone);
        assert_eq!(hook["data"], alone);
        out.push(alone);
    }
    out
}

fn run(lines: &[Value]) -> python::Ran {
    let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
    python::tool("validate_kiosk_form.py", &[], &input)
}

#[test]
fn every_kiosk_form_body_validates_against_the_seeds_field_list() {
    let all = bodies();
    // Every status and every code of both lists (58 pairs), a cancellation
    // included.
    assert_eq!(all.len(), 2 * Status::ALL.len() + 2 * 36 + 2 * 22);
    let r = run(&all);
    assert!(r.ok, "a kiosk-form body does not validate: {}", r.out);
    assert!(
        r.stdout
            .contains("5 statuses, 22 request codes, 36 production codes"),
        "the seed was not read whole: {}",
        r.out
    );
    eprintln!("{}", r.out.trim_end());
}

#[test]
fn a_cancellation_is_a_request_error_with_the_cancellation_code() {
    let p = serde_json::to_value(forms::production_status(
        &job(),
        &event(Status::Cancelled, None, None),
    ))
    .unwrap();
    assert_eq!(p["status"], "REQUEST_ERROR", "{p}");
    assert_eq!(p["errorCode"], forms::CANCELLATION_CODE.as_str(), "{p}");
    assert_eq!(p["description"], satellite::engine::view::CANCELLED, "{p}");
    // The D1 form keeps the exact status, with no code.
    let o = serde_json::to_value(forms::d1_operation(
        &job(),
        &event(Status::Cancelled, None, None),
    ))
    .unwrap();
    assert_eq!(o["details"], json!({"status": "CARD_PROD_CANCELED"}), "{o}");
    assert!(o.get("errorCode").is_none(), "{o}");
}

/// The derived schema can fail: what the seed does not allow is refused,
/// the former spelling of a cancellation first.
#[test]
fn the_derived_schema_refuses_what_the_seed_does_not_allow() {
    let cancelled = serde_json::to_value(forms::production_status(
        &job(),
        &event(Status::Cancelled, None, None),
    ))
    .unwrap();
    let bent = |f: &dyn Fn(&mut Value)| {
        let mut v = cancelled.clone();
        f(&mut v);
        v
    };
    for (what, body, why) in [
        (
            "REQUEST_ERROR without a code (the former cancellation)",
            bent(&|v| v["errorCode"] = Value::Null),
            "errorCode: None is not one of",
        ),
        (
            "a CANCELLED status",
            bent(&|v| v["status"] = json!("CANCELLED")),
            "status: 'CANCELLED' is not one of",
        ),
        (
            "a production code under REQUEST_ERROR",
            bent(&|v| v["errorCode"] = json!("PRT_COVER_OPEN")),
            "errorCode: 'PRT_COVER_OPEN' is not one of",
        ),
        (
            "a request code under PRODUCTION_ERROR",
            bent(&|v| {
                v["status"] = json!("PRODUCTION_ERROR");
                v["errorCode"] = json!("INVALID_PIN_FORMAT");
            }),
            "errorCode: 'INVALID_PIN_FORMAT' is not one of",
        ),
        (
            "a code on PRODUCED",
            bent(&|v| v["status"] = json!("PRODUCED")),
            "errorCode: 'UNKNOWN_ERROR' is not of type 'null'",
        ),
        (
            "kioskId while READY",
            bent(&|v| {
                v["status"] = json!("READY");
                v["errorCode"] = Value::Null;
                v["description"] = Value::Null;
            }),
            "kioskId: 'WIS00001' is not of type 'null'",
        ),
        (
            "a key outside the seed and the ids",
            bent(&|v| v["cancelled"] = json!(true)),
            "Additional properties are not allowed",
        ),
    ] {
        let r = run(&[body]);
        assert!(!r.ok, "{what} passed: {}", r.out);
        assert!(r.out.contains(why), "{what}: expected {why:?} in {}", r.out);
    }
}
