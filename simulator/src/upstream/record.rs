//! The log of everything the upstream listener received, in arrival order,
//! each entry numbered and stamped on arrival (tests measure latency from
//! it), optionally appended to a JSON-lines file. Secrets (client secrets,
//! assertions, `Authorization`) are never logged; nor is card data, which
//! only ever travels in answers. Each answer (status, headers, body) is
//! kept in memory for tests that check the exchange against the protocol's
//! document, and never written to the file.

use super::faults::Group;
use super::time;
use serde::Serialize;
use serde_json::Value;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

/// One received call.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Received {
    /// 1, 2, 3... in arrival order.
    pub n: u64,
    /// Arrival, RFC 3339 with microseconds.
    pub received_at: String,
    #[serde(skip)]
    pub at: SystemTime,
    /// The endpoint group (`None`: a path the stub does not serve).
    pub group: Option<Group>,
    pub method: String,
    pub path: String,
    /// The answer's status, once answered.
    pub status: Option<u16>,
    /// The body as JSON when it is JSON, else as text, `null` when empty;
    /// token calls show their form with secret values masked.
    pub body: Value,
    /// The request's headers, in order; `Authorization` masked to its
    /// scheme (`Bearer ***`).
    pub headers: Vec<(String, String)>,
    /// The answer as sent, once answered: in memory only (it may carry
    /// card data or a token), never in the file.
    #[serde(skip)]
    pub answer: Option<Answered>,
}

/// One answer of the listener, as sent.
#[derive(Clone, Debug)]
pub struct Answered {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Request headers fit for the log: `Authorization` keeps its scheme only.
pub fn shown_headers(headers: &axum::http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            let v = v.to_str().unwrap_or("(not text)");
            let v = if k == axum::http::header::AUTHORIZATION {
                format!("{} ***", v.split(' ').next().unwrap_or(""))
            } else {
                v.to_owned()
            };
            (k.as_str().to_owned(), v)
        })
        .collect()
}

/// The log itself.
#[derive(Default)]
pub struct Log {
    entries: Vec<Received>,
    file: Option<File>,
}

impl Log {
    pub fn open(path: Option<&Path>) -> std::io::Result<Log> {
        let file = match path {
            Some(p) => Some(File::options().create(true).append(true).open(p)?),
            None => None,
        };
        Ok(Log {
            entries: Vec::new(),
            file,
        })
    }

    /// Logs an arrival and gives its number.
    pub fn arrive(
        &mut self,
        at: SystemTime,
        group: Option<Group>,
        method: &str,
        path: &str,
        body: Value,
        headers: Vec<(String, String)>,
    ) -> u64 {
        let n = self.entries.len() as u64 + 1;
        self.entries.push(Received {
            n,
            received_at: time::micros(at),
            at,
            group,
            method: method.to_owned(),
            path: path.to_owned(),
            status: None,
            body,
            headers,
            answer: None,
        });
        n
    }

    /// Notes the answer to call `n` and writes the entry to the file: a
    /// line per answered call (a call cut by "down" never gets one).
    pub fn answer(&mut self, n: u64, answered: Answered) {
        let Some(e) = self.entries.get_mut((n - 1) as usize) else {
            return;
        };
        e.status = Some(answered.status);
        e.answer = Some(answered);
        if let Some(f) = self.file.as_mut() {
            if let Ok(line) = serde_json::to_string(e) {
                // A failed write must not fail the call being answered.
                let _ = writeln!(f, "{line}");
            }
        }
    }

    pub fn entries(&self) -> Vec<Received> {
        self.entries.clone()
    }
}

/// What the log keeps of a body.
pub fn body_view(group: Option<Group>, bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return Value::Null;
    }
    if matches!(group, Some(Group::Token | Group::D1token)) {
        return masked_form(bytes);
    }
    match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(_) => Value::String(String::from_utf8_lossy(bytes).into_owned()),
    }
}

/// A token request's form, secret values replaced by `***`.
fn masked_form(bytes: &[u8]) -> Value {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(bytes).unwrap_or_default();
    let mut map = serde_json::Map::new();
    for (k, v) in pairs {
        let v = if k == "client_secret" || k == "client_assertion" {
            "***".to_owned()
        } else {
            v
        };
        map.insert(k, Value::String(v));
    }
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_forms_are_masked() {
        let v = body_view(
            Some(Group::Token),
            b"grant_type=client_credentials&client_id=a&client_secret=s3cret",
        );
        assert_eq!(v["client_secret"], "***");
        assert_eq!(v["client_id"], "a");
        assert!(!v.to_string().contains("s3cret"));
    }

    #[test]
    fn authorization_keeps_its_scheme_only() {
        let mut h = axum::http::HeaderMap::new();
        h.insert("authorization", "Bearer s3cret".parse().unwrap());
        h.insert("content-type", "application/json".parse().unwrap());
        let shown = shown_headers(&h);
        assert!(shown.contains(&("authorization".into(), "Bearer ***".into())));
        assert!(shown.contains(&("content-type".into(), "application/json".into())));
        assert!(!format!("{shown:?}").contains("s3cret"));
    }

    #[test]
    fn numbers_follow_arrival() {
        let mut log = Log::default();
        let a = log.arrive(SystemTime::now(), None, "GET", "/a", Value::Null, vec![]);
        let b = log.arrive(SystemTime::now(), None, "GET", "/b", Value::Null, vec![]);
        log.answer(
            b,
            Answered {
                status: 204,
                headers: vec![],
                body: vec![],
            },
        );
        assert_eq!((a, b), (1, 2));
        assert_eq!(log.entries()[1].status, Some(204));
        assert_eq!(log.entries()[0].status, None);
    }
}
