//! A property-based run of the local API from its own document: schemathesis
//! (PyPI) reads the document the daemon serves over its TCP listener, makes
//! requests from it (valid and invalid bodies, parameters, content types)
//! with the bearer token, and checks every answer: no 5xx
//! (`not_a_server_error`) and nothing outside the document
//! (`response_schema_conformance`, `status_code_conformance`,
//! `content_type_conformance`). The daemon runs with its real store and the
//! simulator over a pseudo-terminal, and must still answer afterwards.
//!
//! Bounded: `SCHEMATHESIS_EXAMPLES` examples per operation (default 30) and
//! `SCHEMATHESIS_SECONDS` seconds in all (default 60), one worker; a fixed
//! seed, so that a failure can be run again (`SCHEMATHESIS_SEED`).
//!
//! A negative control shows schemathesis can fail here: a copy of the
//! document that misdescribes one answer is refused against the same daemon.

mod common;

use common::kiosk;
use common::python;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The example of the cardToken parameter in the document.
const EXAMPLE_TOKEN: &str = "ca0c8154-1e14-4464-a1ce-dcea7dc3de52";

const TOKEN: &str = "c2NoZW1hdGhlc2lzLXJ1bi10b2tlbi1hdC1sZWFzdC0zMi1jaGFycw";

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `schemathesis run` with `args` and the token; its exit status and output.
fn schemathesis(args: &[String], limit: Duration) -> (bool, String) {
    let mut child = Command::new(python::venv_bin().join("schemathesis"))
        .arg("run")
        .args(args)
        .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
        .args(["--no-color", "--generation-database", "none"])
        // Whatever it leaves (hypothesis' files) stays out of the repository.
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs schemathesis");
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "schemathesis ran past {limit:?}:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_answer_outside_the_document() {
    python::venv_bin();
    let secrets = tempfile::tempdir().unwrap();
    let token_file = common::upstream::secret(secrets.path(), "api.token", TOKEN);
    let k = kiosk::start(
        |_| {},
        |_, c| {
            c.api.tcp_listen = Some("127.0.0.1:0".into());
            c.api.token_file = Some(token_file.clone());
            // Generated requests that happen to be valid queue cards: a
            // full queue (503, by design) is not what this run looks for.
            c.production.queue_limit = 100_000;
        },
    )
    .await;
    kiosk::stock(&k.client).await;
    // A card under the token the document gives as its example, so that the
    // card routes meet a known card too, not only unknown ones (404).
    let mut card = common::upstream::request(EXAMPLE_TOKEN, &common::upstream::pan(7));
    card["kioskId"] = "KIOSK01".into();
    let a = k
        .client
        .post("/v1/cards", card.to_string().as_bytes())
        .await
        .unwrap();
    assert_eq!(a.status, 201, "{}", a.body);
    let addr = k.daemon.tcp_addr().expect("the TCP listener");
    let base = format!("http://{addr}");
    let examples = knob("SCHEMATHESIS_EXAMPLES", 30);
    let seconds = knob("SCHEMATHESIS_SECONDS", 60);
    let seed = knob("SCHEMATHESIS_SEED", 20240601);
    let args: Vec<String> = vec![
        format!("{base}/v1/openapi.yaml"),
        "--checks".into(),
        "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance".into(),
        "--max-examples".into(),
        examples.to_string(),
        "--max-time".into(),
        seconds.to_string(),
        "--seed".into(),
        seed.to_string(),
        "--workers".into(),
        "1".into(),
        "--request-timeout".into(),
        "20".into(),
    ];
    let limit = Duration::from_secs(seconds + 60);
    let (ok, out) = tokio::task::spawn_blocking(move || schemathesis(&args, limit))
        .await
        .unwrap();
    eprintln!("{out}");
    assert!(ok, "schemathesis found problems (see above)");
    // It ran: operations were tested, and it says so.
    assert!(out.contains("POST /v1/cards"), "{out}");

    // The daemon survived it and still answers on both listeners.
    let a = k.client.get("/v1/status").await.unwrap();
    assert_eq!(a.status, 200, "{}", a.body);
    let x = common::http::send(
        &common::http::Over::Tcp(addr),
        "GET",
        "/v1/status",
        &[("authorization", &format!("Bearer {TOKEN}"))],
        b"",
    )
    .await;
    assert_eq!(x.status, 200);

    // Negative control: the same daemon against a document that says the
    // health answer's kioskId is an integer.
    let doc = std::fs::read_to_string(python::repo().join("docs/local-api.openapi.yaml")).unwrap();
    let at = doc
        .find("\n    Health:\n")
        .expect("the document has Health");
    let (head, health) = doc.split_at(at);
    let wrong = format!(
        "{head}{}",
        health.replacen(
            "        kioskId:\n          type: string\n",
            "        kioskId:\n          type: integer\n",
            1
        )
    );
    assert_ne!(wrong, doc, "Health names kioskId");
    let wrong_path = secrets.path().join("wrong.yaml");
    std::fs::write(&wrong_path, wrong).unwrap();
    let args: Vec<String> = vec![
        wrong_path.display().to_string(),
        "--url".into(),
        base.clone(),
        "--include-operation-id".into(),
        "getStatus".into(),
        "--checks".into(),
        "response_schema_conformance".into(),
        "--max-examples".into(),
        "3".into(),
        "--phases".into(),
        "examples,fuzzing".into(),
    ];
    let (ok, out) =
        tokio::task::spawn_blocking(move || schemathesis(&args, Duration::from_secs(60)))
            .await
            .unwrap();
    assert!(!ok, "the negative control passed:\n{out}");
    assert!(out.contains("Response violates schema"), "{out}");
    eprintln!("negative control, as expected: schemathesis refused the misdescribed answer");
    k.daemon.stop().await;
}
