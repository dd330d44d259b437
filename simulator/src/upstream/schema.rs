//! Strict checks of what the kiosk sends, as `docs/central-base.openapi.yaml`
//! writes them: every key known, every required key present, types, enums,
//! formats and the cross-field rules. An error names the field (a JSON path
//! such as `events[2].production.kioskId`) and what is wrong with it.

use super::time;
use serde_json::{Map, Value};

/// The seed's five: a cancellation is sent as REQUEST_ERROR (docs/EVENT-FORMS.md).
pub const PRODUCTION_STATUSES: &[&str] = &[
    "READY",
    "IN_PROGRESS",
    "PRODUCED",
    "PRODUCTION_ERROR",
    "REQUEST_ERROR",
];
pub const OPERATION_STATUSES: &[&str] = &["PENDING", "SUCCESSFUL", "FAILED"];
pub const DETAIL_STATUSES: &[&str] = &[
    "CARD_PROD_REQUESTED",
    "CARD_PROD_READY",
    "CARD_PROD_DONE",
    "DATA_EXCEPTION",
    "CARD_PROD_EXCEPTION",
    "CARD_PROD_CANCELED",
];
pub const MAX_EVENTS: usize = 500;

type Check = Result<(), String>;

fn object<'a>(v: &'a Value, at: &str) -> Result<&'a Map<String, Value>, String> {
    v.as_object()
        .ok_or_else(|| format!("{at}: must be an object"))
}

/// Refuses keys outside `allowed` and requires those in `required`.
fn keys(o: &Map<String, Value>, at: &str, allowed: &[&str], required: &[&str]) -> Check {
    if let Some(k) = o.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(format!("{}: unknown key", join(at, k)));
    }
    if let Some(k) = required.iter().find(|k| !o.contains_key(**k)) {
        return Err(format!("{}: required", join(at, k)));
    }
    Ok(())
}

fn join(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_owned()
    } else {
        format!("{at}.{key}")
    }
}

fn string<'a>(o: &'a Map<String, Value>, at: &str, key: &str) -> Result<&'a str, String> {
    o.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{}: must be a string", join(at, key)))
}

fn nonempty<'a>(o: &'a Map<String, Value>, at: &str, key: &str) -> Result<&'a str, String> {
    let s = string(o, at, key)?;
    if s.is_empty() {
        return Err(format!("{}: must not be empty", join(at, key)));
    }
    Ok(s)
}

fn string_or_null(o: &Map<String, Value>, at: &str, key: &str) -> Check {
    match o.get(key) {
        None | Some(Value::Null) | Some(Value::String(_)) => Ok(()),
        _ => Err(format!("{}: must be a string or null", join(at, key))),
    }
}

fn one_of<'a>(
    o: &'a Map<String, Value>,
    at: &str,
    key: &str,
    set: &[&str],
) -> Result<&'a str, String> {
    let s = string(o, at, key)?;
    if !set.contains(&s) {
        return Err(format!(
            "{}: must be one of {}",
            join(at, key),
            set.join(", ")
        ));
    }
    Ok(s)
}

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// `^[A-Za-z0-9_-]{1,64}$`, D1's operation id.
pub fn is_operation_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
}

/// ProductionStatus: all keys always present.
pub fn production(v: &Value, at: &str) -> Check {
    let o = object(v, at)?;
    let all = [
        "eventId",
        "sequence",
        "cardToken",
        "profileId",
        "status",
        "kioskId",
        "occurredAt",
        "errorCode",
        "description",
    ];
    keys(o, at, &all, &all)?;
    if !is_uuid(string(o, at, "eventId")?) {
        return Err(format!("{}: must be a UUID", join(at, "eventId")));
    }
    if o["sequence"].as_u64().is_none_or(|n| n < 1) {
        return Err(format!("{}: must be an integer >= 1", join(at, "sequence")));
    }
    nonempty(o, at, "cardToken")?;
    if !(o["profileId"].is_i64() || o["profileId"].is_u64()) {
        return Err(format!("{}: must be an integer", join(at, "profileId")));
    }
    let status = one_of(o, at, "status", PRODUCTION_STATUSES)?;
    match (status, &o["kioskId"]) {
        ("READY", Value::Null) => {}
        ("READY", _) => {
            return Err(format!(
                "{}: must be null when status is READY",
                join(at, "kioskId")
            ))
        }
        (_, Value::String(k)) if !k.is_empty() => {}
        _ => {
            return Err(format!(
                "{}: must be a kiosk id unless status is READY",
                join(at, "kioskId")
            ))
        }
    }
    if !time::is_millis_z(string(o, at, "occurredAt")?) {
        return Err(format!(
            "{}: must be RFC 3339 UTC with milliseconds (2024-01-01T12:24:56.121Z)",
            join(at, "occurredAt")
        ));
    }
    string_or_null(o, at, "errorCode")?;
    string_or_null(o, at, "description")
}

/// D1Operation, the `PRODUCE` operation object of D1's notifications.
pub fn operation(v: &Value, at: &str) -> Check {
    let o = object(v, at)?;
    keys(
        o,
        at,
        &[
            "operationId",
            "operation",
            "status",
            "startTime",
            "endTime",
            "cardId",
            "details",
            "errorCode",
            "error",
            "issuerRequestId",
        ],
        &[
            "operationId",
            "operation",
            "status",
            "startTime",
            "cardId",
            "details",
        ],
    )?;
    if !is_operation_id(string(o, at, "operationId")?) {
        return Err(format!(
            "{}: must match ^[A-Za-z0-9_-]{{1,64}}$",
            join(at, "operationId")
        ));
    }
    one_of(o, at, "operation", &["PRODUCE"])?;
    let status = one_of(o, at, "status", OPERATION_STATUSES)?;
    for key in ["startTime", "endTime"] {
        if o.contains_key(key) && time::parse(string(o, at, key)?).is_none() {
            return Err(format!("{}: must be an RFC 3339 date-time", join(at, key)));
        }
    }
    match (status, o.contains_key("endTime")) {
        ("PENDING", true) => {
            return Err(format!(
                "{}: only when status is not PENDING",
                join(at, "endTime")
            ))
        }
        ("SUCCESSFUL" | "FAILED", false) => {
            return Err(format!(
                "{}: required when status is {status}",
                join(at, "endTime")
            ))
        }
        _ => {}
    }
    nonempty(o, at, "cardId")?;
    let dat = join(at, "details");
    let d = object(&o["details"], &dat)?;
    keys(d, &dat, &["status", "reason"], &["status"])?;
    let detail = one_of(d, &dat, "status", DETAIL_STATUSES)?;
    if d.contains_key("reason") {
        string(d, &dat, "reason")?;
    }
    let fits = match status {
        "PENDING" => matches!(detail, "CARD_PROD_REQUESTED" | "CARD_PROD_READY"),
        "SUCCESSFUL" => detail == "CARD_PROD_DONE",
        _ => matches!(
            detail,
            "DATA_EXCEPTION" | "CARD_PROD_EXCEPTION" | "CARD_PROD_CANCELED"
        ),
    };
    if !fits {
        return Err(format!(
            "{}: does not go with status {status}",
            join(&dat, "status")
        ));
    }
    for key in ["errorCode", "error", "issuerRequestId"] {
        if o.contains_key(key) {
            string(o, at, key)?;
        }
    }
    Ok(())
}

/// `{"events": [EventEnvelope, ...]}`, 1 to 500 envelopes.
pub fn events(v: &Value) -> Check {
    let o = object(v, "body")?;
    keys(o, "", &["events"], &["events"])?;
    let list = o["events"].as_array().ok_or("events: must be an array")?;
    if list.is_empty() || list.len() > MAX_EVENTS {
        return Err(format!("events: must hold 1 to {MAX_EVENTS} events"));
    }
    for (i, e) in list.iter().enumerate() {
        let at = format!("events[{i}]");
        let eo = object(e, &at)?;
        keys(
            eo,
            &at,
            &["production", "operation"],
            &["production", "operation"],
        )?;
        production(&eo["production"], &join(&at, "production"))?;
        operation(&eo["operation"], &join(&at, "operation"))?;
    }
    Ok(())
}

/// The webhook body: `{"type", "timestamp", "data"}`.
pub fn webhook(v: &Value) -> Check {
    let o = object(v, "body")?;
    keys(
        o,
        "",
        &["type", "timestamp", "data"],
        &["type", "timestamp", "data"],
    )?;
    one_of(o, "", "type", &["card.production.status_changed"])?;
    if time::parse(string(o, "", "timestamp")?).is_none() {
        return Err("timestamp: must be an RFC 3339 date-time".into());
    }
    if o["data"].get("operationId").is_some() {
        operation(&o["data"], "data")
    } else {
        production(&o["data"], "data")
    }
}

/// An acknowledgement of a delivered request.
pub fn ack(v: &Value) -> Check {
    let o = object(v, "body")?;
    keys(
        o,
        "",
        &[
            "cardToken",
            "outcome",
            "status",
            "occurredAt",
            "errorCode",
            "field",
            "reason",
        ],
        &["outcome", "status", "occurredAt"],
    )?;
    let outcome = one_of(o, "", "outcome", &["ACCEPTED", "REFUSED"])?;
    let status = one_of(o, "", "status", &["READY", "REQUEST_ERROR"])?;
    if (outcome == "ACCEPTED") != (status == "READY") {
        return Err("status: READY goes with ACCEPTED, REQUEST_ERROR with REFUSED".into());
    }
    if time::parse(string(o, "", "occurredAt")?).is_none() {
        return Err("occurredAt: must be an RFC 3339 date-time".into());
    }
    for key in ["cardToken", "errorCode", "field", "reason"] {
        string_or_null(o, "", key)?;
    }
    Ok(())
}

/// The heartbeat: permissive, but these three are needed to read it.
pub fn heartbeat(v: &Value) -> Check {
    let o = object(v, "body")?;
    string(o, "", "agentVersion")?;
    string(o, "", "state")?;
    if time::parse(string(o, "", "sentAt")?).is_none() {
        return Err("sentAt: must be an RFC 3339 date-time".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub fn envelope() -> Value {
        json!({
            "production": {
                "eventId": "0b9c8a52-3b1e-4a53-9a39-2f0f6a1d6a11",
                "sequence": 2, "cardToken": "tok-1", "profileId": 123456,
                "status": "IN_PROGRESS", "kioskId": "WIS00001",
                "occurredAt": "2024-01-01T12:24:56.121Z",
                "errorCode": null, "description": null
            },
            "operation": {
                "operationId": "op-1", "operation": "PRODUCE", "status": "PENDING",
                "startTime": "2024-01-01T12:24:56.121Z", "cardId": "c-1",
                "details": {"status": "CARD_PROD_READY"}
            }
        })
    }

    #[test]
    fn a_good_batch_passes() {
        assert_eq!(events(&json!({"events": [envelope()]})), Ok(()));
    }

    type Change = Box<dyn Fn(&mut Value)>;

    #[test]
    fn refusals_name_the_field() {
        let cases: Vec<(&str, Change)> = vec![
            (
                "events[0].production.kioskId",
                Box::new(|e| {
                    e["production"]["status"] = "READY".into();
                }),
            ),
            (
                "events[0].production.kioskId",
                Box::new(|e| {
                    e["production"]["kioskId"] = Value::Null;
                }),
            ),
            (
                "events[0].production.extra",
                Box::new(|e| {
                    e["production"]["extra"] = 1.into();
                }),
            ),
            (
                "events[0].production.description",
                Box::new(|e| {
                    e["production"]
                        .as_object_mut()
                        .unwrap()
                        .remove("description");
                }),
            ),
            (
                "events[0].production.eventId",
                Box::new(|e| {
                    e["production"]["eventId"] = "not-a-uuid".into();
                }),
            ),
            (
                "events[0].production.sequence",
                Box::new(|e| {
                    e["production"]["sequence"] = 0.into();
                }),
            ),
            (
                "events[0].production.occurredAt",
                Box::new(|e| {
                    e["production"]["occurredAt"] = "2024-01-01T12:24:56Z".into();
                }),
            ),
            (
                "events[0].operation.operationId",
                Box::new(|e| {
                    e["operation"]["operationId"] = "a b".into();
                }),
            ),
            (
                "events[0].operation.endTime",
                Box::new(|e| {
                    e["operation"]["endTime"] = "2024-01-01T12:25:00Z".into();
                }),
            ),
            (
                "events[0].operation.details.status",
                Box::new(|e| {
                    e["operation"]["details"]["status"] = "CARD_PROD_DONE".into();
                }),
            ),
            (
                "events[0].operation.details.why",
                Box::new(|e| {
                    e["operation"]["details"]["why"] = "x".into();
                }),
            ),
        ];
        for (field, change) in cases {
            let mut e = envelope();
            change(&mut e);
            let err = events(&json!({"events": [e]})).unwrap_err();
            assert!(err.starts_with(&format!("{field}:")), "{field} -> {err}");
        }
        assert!(events(&json!({"events": []}))
            .unwrap_err()
            .starts_with("events:"));
        assert!(events(&json!({"events": [envelope()], "more": 1})).is_err());
    }

    #[test]
    fn acks_and_heartbeats() {
        let good = json!({"cardToken": "t", "outcome": "ACCEPTED", "status": "READY",
            "occurredAt": "2024-01-01T12:24:56.121Z", "errorCode": null, "field": null, "reason": null});
        assert_eq!(ack(&good), Ok(()));
        let mut bad = good.clone();
        bad["status"] = "REQUEST_ERROR".into();
        assert!(ack(&bad).is_err());
        assert!(heartbeat(&json!({"agentVersion": "1", "state": "ok",
            "sentAt": "2024-01-01T12:24:56Z", "anything": [1]}))
        .is_ok());
        assert!(
            heartbeat(&json!({"agentVersion": "1", "sentAt": "2024-01-01T12:24:56Z"})).is_err()
        );
    }
}
