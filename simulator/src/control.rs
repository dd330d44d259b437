//! The control socket: JSON lines on a Unix socket, one request per line,
//! one answer per line.
//!
//! ```text
//! {"cmd":"raise","condition":"cover-open"}          -> {"ok":true}
//! {"cmd":"clear"} / {"cmd":"clear","condition":"cover-open"}
//! {"cmd":"take"}                                    -> {"ok":true,"taken":true}
//! {"cmd":"customer","customer":"take:500"}          (take:MS | never | refuse)
//! {"cmd":"option","name":"mag","on":false}
//! {"cmd":"feeder","n":1,"count":5,"card_type":"visa"}
//! {"cmd":"identity","serial":"SN123"}
//! {"cmd":"state"}                                   -> {"ok":true,"state":{...}}
//! {"cmd":"dump","card":1,"dir":"/tmp/cards"}        -> {"ok":true,"files":[...]}
//! ```
//! Failures answer `{"ok":false,"error":"..."}`.

use crate::condition::Condition;
use crate::config::Customer;
use crate::sim::Simulator;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::io;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum Request {
    Raise {
        condition: String,
    },
    Clear {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        condition: Option<String>,
    },
    Take,
    Customer {
        customer: String,
    },
    Option {
        name: String,
        on: bool,
    },
    Feeder {
        n: u8,
        count: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        card_type: Option<String>,
    },
    Identity {
        serial: String,
    },
    /// A new ribbon loaded.
    Ribbon {
        ribbon_type: String,
        cards: u32,
    },
    /// The reject box or the output hopper emptied.
    Empty {
        which: String,
    },
    State,
    Dump {
        card: u64,
        dir: PathBuf,
    },
}

fn ok(extra: Value) -> Value {
    let mut v = json!({ "ok": true });
    if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
        o.extend(e);
    }
    v
}

fn fail(e: impl std::fmt::Display) -> Value {
    json!({ "ok": false, "error": e.to_string() })
}

/// Carries out one request.
pub fn handle(sim: &Simulator, req: Request) -> Value {
    match req {
        Request::Raise { condition } => match condition.parse::<Condition>() {
            Ok(c) => {
                sim.raise(c);
                ok(Value::Null)
            }
            Err(e) => fail(e),
        },
        Request::Clear { condition } => {
            match sim.try_clear(condition.as_deref().filter(|c| *c != "all")) {
                Ok(()) => ok(Value::Null),
                Err(e) => fail(e),
            }
        }
        Request::Take => ok(json!({ "taken": sim.take() })),
        Request::Customer { customer } => match customer.parse::<Customer>() {
            Ok(c) => {
                sim.set_customer(c);
                ok(Value::Null)
            }
            Err(e) => fail(e),
        },
        Request::Option { name, on } => match sim.set_option(&name, on) {
            Ok(()) => ok(Value::Null),
            Err(e) => fail(e),
        },
        Request::Feeder {
            n,
            count,
            card_type,
        } => match sim.set_feeder(n, count, card_type.as_deref()) {
            Ok(()) => ok(Value::Null),
            Err(e) => fail(e),
        },
        Request::Identity { serial } => {
            if serial.is_empty()
                || serial
                    .bytes()
                    .any(|b| !(0x21..0x7F).contains(&b) || b == b';')
            {
                return fail("a serial number is printable ASCII without spaces or ';'");
            }
            sim.set_serial(&serial);
            ok(Value::Null)
        }
        Request::Ribbon { ribbon_type, cards } => match sim.load_ribbon(&ribbon_type, cards) {
            Ok(()) => ok(Value::Null),
            Err(e) => fail(e),
        },
        Request::Empty { which } => match sim.empty_box(&which) {
            Ok(()) => ok(Value::Null),
            Err(e) => fail(e),
        },
        Request::State => match serde_json::to_value(sim.state()) {
            Ok(s) => ok(json!({ "state": s })),
            Err(e) => fail(e),
        },
        Request::Dump { card, dir } => match sim.dump_card(card, &dir) {
            Ok(files) => ok(json!({ "files": files })),
            Err(e) => fail(e),
        },
    }
}

/// Answers one line of the protocol.
pub fn handle_line(sim: &Simulator, line: &str) -> Value {
    match serde_json::from_str::<Request>(line) {
        Ok(req) => handle(sim, req),
        Err(e) => fail(format!("bad request: {e}")),
    }
}

pub(crate) async fn serve(sim: Simulator, path: &Path) -> io::Result<()> {
    // A socket file left by an earlier run would make bind fail.
    if let Ok(m) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if m.file_type().is_socket() {
            std::fs::remove_file(path)?;
        }
    }
    let listener = UnixListener::bind(path)?;
    tracing::info!(path = %path.display(), "control socket ready");
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(serve_client(sim.clone(), stream));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "control accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(())
}

async fn serve_client(sim: Simulator, stream: UnixStream) {
    let (r, mut w) = stream.into_split();
    let mut lines = BufReader::new(r).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.trim().is_empty() {
            continue;
        }
        // Requests are quick (no mechanism time); dump writes files, off the async threads.
        let sim2 = sim.clone();
        let answer = tokio::task::spawn_blocking(move || handle_line(&sim2, &line))
            .await
            .unwrap_or_else(fail);
        let mut out = answer.to_string();
        out.push('\n');
        if w.write_all(out.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Client side: sends one request and returns the answer.
pub async fn request(path: &Path, req: &Request) -> io::Result<Value> {
    let stream = UnixStream::connect(path).await?;
    let (r, mut w) = stream.into_split();
    let mut line = serde_json::to_string(req)?;
    line.push('\n');
    w.write_all(line.as_bytes()).await?;
    let mut lines = BufReader::new(r).lines();
    let answer = lines.next_line().await?.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the control socket closed without answering",
        )
    })?;
    serde_json::from_str(&answer).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}
