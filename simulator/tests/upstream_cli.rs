//! The `upstream-stub` binary: it prints its addresses, and its control
//! listener (plain HTTP) drives it, staying up while "down" stops the
//! upstream listener.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[tokio::test]
async fn binary_with_control_listener() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "s3cret\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_upstream-stub"))
        .args(["--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"])
        .args(["--client-id", "kiosk-1", "--kiosk-id", "WIS00042"])
        .arg("--client-secret-file")
        .arg(&secret)
        .args(["--token-ttl-s", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addrs: Value = serde_json::from_str(&line).unwrap();
    let (base, token_url, ctl) = (
        addrs["baseUrl"].as_str().unwrap().to_owned(),
        addrs["tokenUrl"].as_str().unwrap().to_owned(),
        addrs["control"].as_str().unwrap().to_owned(),
    );
    let c = reqwest::Client::builder().no_proxy().build().unwrap();

    let v: Value = c
        .post(&token_url)
        .basic_auth("kiosk-1", Some("s3cret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["expires_in"], 60);
    let tok = v["access_token"].as_str().unwrap().to_owned();

    let r = c
        .post(format!("{ctl}/_stub/requests"))
        .json(&json!({"request": {"cardToken": "cli-1"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let polled: Value = c
        .get(format!("{base}/kiosks/WIS00042/requests?wait=0"))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(polled["requests"][0]["request"]["cardToken"], "cli-1");

    let r = c
        .post(format!("{ctl}/_stub/faults"))
        .json(&json!({"group": "all", "fault": "down"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(c.post(&token_url).send().await.is_err());
    let received: Value = c
        .get(format!("{ctl}/_stub/received"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(received.as_array().unwrap().len(), 2);
    assert_eq!(received[1]["n"], 2);
    c.delete(format!("{ctl}/_stub/faults"))
        .send()
        .await
        .unwrap();
    let r = c
        .get(format!("{base}/kiosks/WIS00042/requests?wait=0"))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    child.kill().unwrap();
    child.wait().unwrap();
}
