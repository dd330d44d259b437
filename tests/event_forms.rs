//! The upstream forms of a status change (`satellite::upstream::forms`),
//! checked against JSON Schemas written by hand from the seeds' field lists
//! (`tests/schemas/`), with an independent validator (the `jsonschema` crate):
//! one event of every mapping row, and every error code under its status.

use satellite::codes::ErrorCode;
use satellite::store::{Event, Job, JobMeta, Status};
use satellite::upstream::forms::{self, Form};
use serde_json::{json, Value};

const CREATED: &str = "2025-01-17T06:28:02.492Z";
const AT: &str = "2025-01-21T09:28:12.492Z";

fn schema(name: &str) -> jsonschema::Validator {
    let path = format!("{}/tests/schemas/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let value: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    jsonschema::validator_for(&value).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn production_schema() -> jsonschema::Validator {
    schema("production-status.schema.json")
}

fn operation_schema() -> jsonschema::Validator {
    schema("d1-operation.schema.json")
}

fn assert_valid(v: &jsonschema::Validator, instance: &Value, what: &str) {
    let errors: Vec<String> = v
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{what}: {instance}\n{errors:#?}");
}

fn job(issuer_request_id: &str) -> Job {
    Job {
        seq: 1,
        meta: JobMeta {
            card_token: "ca0c8154-1e14-4464-a1ce-dcea7dc3de52".into(),
            profile_id: 123456,
            kiosk_id: "WIS00001".into(),
            card_type: "VISA_DEBIT".into(),
            issuer_request_id: issuer_request_id.into(),
            card_id: "271b-6e47-8ec3-7f3f".into(),
            pan_masked: "411111******1111".into(),
        },
        status: Status::Ready,
        step: None,
        error_code: None,
        description: None,
        occurred_at: CREATED.into(),
        created_at: CREATED.into(),
        deferred: false,
    }
}

fn event(seq: i64, status: Status, code: Option<ErrorCode>, description: Option<&str>) -> Event {
    Event {
        id: "5f0c6a51-8d1e-4a57-9b57-3f7e1f0b2d6a".into(),
        card_token: "ca0c8154-1e14-4464-a1ce-dcea7dc3de52".into(),
        seq,
        status,
        step: None,
        error_code: code,
        description: description.map(str::to_string),
        occurred_at: AT.into(),
    }
}

/// One event of every mapping row, with the D1 `details.status` it must give.
fn rows() -> Vec<(Event, &'static str)> {
    vec![
        (event(1, Status::Ready, None, None), "CARD_PROD_REQUESTED"),
        (event(2, Status::InProgress, None, None), "CARD_PROD_READY"),
        (event(5, Status::Produced, None, None), "CARD_PROD_DONE"),
        (
            event(
                5,
                Status::ProductionError,
                Some(ErrorCode::DP_IO_ERROR),
                Some("data preparation: connection reset"),
            ),
            "DATA_EXCEPTION",
        ),
        (
            event(5, Status::ProductionError, Some(ErrorCode::CB_TIME), None),
            "CARD_PROD_EXCEPTION",
        ),
        (
            event(
                5,
                Status::ProductionError,
                Some(ErrorCode::PRD_FEEDER_EMPTY),
                Some("feeder 1 is empty (media-empty)"),
            ),
            "CARD_PROD_EXCEPTION",
        ),
        (
            event(
                1,
                Status::RequestError,
                Some(ErrorCode::INVALID_PIN_FORMAT),
                None,
            ),
            "DATA_EXCEPTION",
        ),
        (
            event(2, Status::Cancelled, None, None),
            "CARD_PROD_CANCELED",
        ),
    ]
}

#[test]
fn every_mapping_row_gives_forms_that_match_the_schemas() {
    let (ps, os) = (production_schema(), operation_schema());
    for rid in ["req-42", ""] {
        let j = job(rid);
        for (e, details) in rows() {
            let what = format!("{} {:?}", e.status, e.error_code);
            let p = serde_json::to_value(forms::production_status(&j, &e)).unwrap();
            let o = serde_json::to_value(forms::d1_operation(&j, &e)).unwrap();
            assert_valid(&ps, &p, &what);
            assert_valid(&os, &o, &what);
            assert_eq!(o["details"]["status"], details, "{what}: {o}");

            // The same forms in an envelope, in a batch and in the webhook.
            let env = serde_json::to_value(forms::envelope(&j, &e)).unwrap();
            assert_eq!(env, json!({"production": p, "operation": o}));
            for (form, validator, expected) in [
                (Form::ProductionStatus, &ps, &p),
                (Form::D1Operation, &os, &o),
            ] {
                let body = serde_json::to_value(forms::webhook_body(form, &j, &e)).unwrap();
                assert_eq!(body["type"], "card.production.status_changed");
                assert_eq!(body["timestamp"], AT);
                assert_eq!(&body["data"], expected);
                assert_valid(validator, &body["data"], &what);
            }
        }
    }
}

#[test]
fn every_error_code_under_its_status_matches_the_schemas() {
    let (ps, os) = (production_schema(), operation_schema());
    let j = job("req-42");
    let mut seen = 0;
    for &code in ErrorCode::ALL {
        // UNKNOWN_ERROR belongs to both lists.
        let request = ps.is_valid(&json!({
            "eventId": "5f0c6a51-8d1e-4a57-9b57-3f7e1f0b2d6a", "sequence": 1,
            "cardToken": "t", "profileId": 1, "status": "REQUEST_ERROR",
            "kioskId": "WIS00001", "occurredAt": AT, "errorCode": code.as_str(),
            "description": "d",
        }));
        let production = ps.is_valid(&json!({
            "eventId": "5f0c6a51-8d1e-4a57-9b57-3f7e1f0b2d6a", "sequence": 1,
            "cardToken": "t", "profileId": 1, "status": "PRODUCTION_ERROR",
            "kioskId": "WIS00001", "occurredAt": AT, "errorCode": code.as_str(),
            "description": "d",
        }));
        assert!(request || production, "{code} is in neither seed list");
        for (status, fits) in [
            (Status::RequestError, request),
            (Status::ProductionError, production),
        ] {
            if !fits {
                continue;
            }
            let e = event(3, status, Some(code), None);
            let what = format!("{status} {code}");
            assert_valid(
                &ps,
                &serde_json::to_value(forms::production_status(&j, &e)).unwrap(),
                &what,
            );
            assert_valid(
                &os,
                &serde_json::to_value(forms::d1_operation(&j, &e)).unwrap(),
                &what,
            );
            seen += 1;
        }
    }
    // 22 request codes and 36 production codes (UNKNOWN_ERROR in both).
    assert_eq!(seen, 58);
}

/// The schemas are not vacuous: forms bent against the seeds fail them.
#[test]
fn the_schemas_reject_broken_forms() {
    let (ps, os) = (production_schema(), operation_schema());
    let j = job("req-42");

    let ready = serde_json::to_value(forms::production_status(
        &j,
        &event(1, Status::Ready, None, None),
    ))
    .unwrap();
    assert!(ps.is_valid(&ready));
    let mut bad = ready.clone();
    bad["kioskId"] = json!("WIS00001");
    assert!(!ps.is_valid(&bad), "kioskId set while READY");
    let mut bad = ready.clone();
    bad.as_object_mut().unwrap().remove("errorCode");
    assert!(!ps.is_valid(&bad), "a key left out");
    let mut bad = ready.clone();
    bad["status"] = json!("CANCELLED");
    assert!(!ps.is_valid(&bad), "a status outside the seed's five");
    let mut bad = ready;
    bad["errorCode"] = json!("PRT_RIBBON");
    assert!(!ps.is_valid(&bad), "an error code on READY");

    let pending = serde_json::to_value(forms::d1_operation(
        &j,
        &event(1, Status::Ready, None, None),
    ))
    .unwrap();
    assert!(os.is_valid(&pending));
    let mut bad = pending.clone();
    bad["endTime"] = json!(AT);
    assert!(!os.is_valid(&bad), "endTime while PENDING");
    let mut bad = pending;
    bad["operationId"] = json!("prod/1");
    assert!(!os.is_valid(&bad), "operationId outside its pattern");

    let failed = serde_json::to_value(forms::d1_operation(
        &j,
        &event(5, Status::ProductionError, Some(ErrorCode::CB_TIME), None),
    ))
    .unwrap();
    assert!(os.is_valid(&failed));
    let mut bad = failed.clone();
    bad["details"].as_object_mut().unwrap().remove("reason");
    assert!(!os.is_valid(&bad), "an exception without its reason");
    let mut bad = failed;
    bad.as_object_mut().unwrap().remove("endTime");
    assert!(!os.is_valid(&bad), "a failure without endTime");
}
