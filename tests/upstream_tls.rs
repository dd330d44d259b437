//! Upstream over real TLS on loopback: the daemon (real store, simulator over
//! a pty) and the reference central base serving HTTPS with a certificate
//! from a CA made here (rcgen). The agent delivers only to a server whose
//! certificate it can check against the CA it is given; presents its client
//! certificate when the server asks for one (mutual TLS); authenticates for
//! tokens with a secret or a signed JWT assertion; and renews a refused
//! token once, not in a loop. What the stub received is the ground truth.

mod common;

use common::upstream::{self as up, cb_events, distinct, request, until, Link};
use printer_sim::upstream::{Fault, Group, StubHandle, TlsConfig};
use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use satellite::api::client::Client;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

const LIFE: [&str; 3] = ["READY", "IN_PROGRESS", "PRODUCED"];

/// A CA of the test's own, issuing server and client certificates.
struct Pki {
    ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let ca_pem = params.self_signed(&key).unwrap().pem();
        Pki {
            ca_pem,
            issuer: Issuer::new(params, key),
        }
    }

    /// (certificate PEM, PKCS#8 key PEM) for `names`, for `usage`.
    fn issue(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// The server's TLS: a certificate for 127.0.0.1; with `mutual`, clients
    /// must present a certificate from this CA.
    fn server(&self, mutual: bool) -> TlsConfig {
        let (cert, key) = self.issue(
            &["127.0.0.1", "localhost"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        TlsConfig {
            cert_chain_pem: cert,
            key_pem: key,
            client_ca_pem: mutual.then(|| self.ca_pem.clone()),
        }
    }

    /// The CA certificate as a file (public: any mode).
    fn ca_file(&self, dir: &Path) -> PathBuf {
        let p = dir.join("ca.pem");
        std::fs::write(&p, &self.ca_pem).unwrap();
        p
    }

    /// A client certificate and its key (mode 0600) as files.
    fn client_files(&self, dir: &Path) -> (PathBuf, PathBuf) {
        let (cert, key) = self.issue(&["satellite-kiosk01"], ExtendedKeyUsagePurpose::ClientAuth);
        let c = dir.join("client.pem");
        std::fs::write(&c, cert).unwrap();
        (c, up::secret(dir, "client.key", &key))
    }
}

/// A kiosk reaching `stub` as `link` says: its cards' status changes wait,
/// the central base's link is down with `why` in its error, and the stub's
/// application never saw a call (the handshake refused it).
async fn handshake_refused(stub: StubHandle, link: &Link, prefix: &str, pan_base: u32, why: &str) {
    let k = up::start_with(stub, link, &["cb"], false, |_| {}).await;
    let tokens = submit(&k.kiosk.client, prefix, 2, pan_base).await;
    let s = down_with_backlog(&k.kiosk.client, &tokens).await;
    let error = s["upstream"]["central-base"]["error"]
        .as_str()
        .unwrap_or("");
    assert!(error.contains(why), "{s}");
    assert!(k.stub.control().received().is_empty());
    assert!(k.stub.control().events().is_empty());
    k.kiosk.daemon.stop().await;
}

/// Submits `n` cards through the local API; their tokens.
async fn submit(client: &Client, prefix: &str, n: u32, pan_base: u32) -> Vec<String> {
    let mut tokens = Vec::new();
    for i in 0..n {
        let t = format!("{prefix}-{i}");
        let a = client
            .post(
                "/v1/cards",
                request(&t, &up::pan(pan_base + i)).to_string().as_bytes(),
            )
            .await
            .unwrap();
        assert_eq!(a.status, 201, "{}", a.body);
        tokens.push(t);
    }
    tokens
}

/// Every card's life reaches the stub's events endpoint, in order.
async fn delivered(stub: &StubHandle, tokens: &[String]) {
    for t in tokens {
        until(&format!("{t} delivered over TLS"), 30, || {
            distinct(&cb_events(stub, t)) == LIFE
        })
        .await;
        let seqs: Vec<i64> = cb_events(stub, t).iter().map(|e| e.1).collect();
        assert!(seqs.windows(2).all(|w| w[0] <= w[1]), "{t}: {seqs:?}");
    }
}

/// Waits until the central base's sink is down with events waiting, and
/// gives the status then.
async fn down_with_backlog(client: &Client, tokens: &[String]) -> Value {
    // The cards are produced meanwhile (the upstream holds nothing back).
    for t in tokens {
        let mut status = Value::Null;
        for _ in 0..300 {
            let a = client
                .get(&format!("/v1/cards/{t}/production"))
                .await
                .unwrap();
            status = a.body["status"].clone();
            if status == "PRODUCED" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(status, "PRODUCED", "{t}");
    }
    let mut last = Value::Null;
    for _ in 0..300 {
        last = client.get("/v1/status").await.unwrap().body;
        if last["upstream"]["central-base"]["state"] == "down" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let link = &last["upstream"]["central-base"];
    eprintln!("central base link: {link}");
    assert_eq!(link["state"], "down", "{last}");
    assert_eq!(link["code"], "SAT_SERVER_NOT_REACHABLE", "{last}");
    // The error names the certificate that failed the handshake.
    let error = link["error"].as_str().unwrap_or("").to_ascii_lowercase();
    assert!(error.contains("certificate"), "{last}");
    // Each card's three status changes wait in the outbox.
    let depth = last["outbox"]["central-base"]["depth"].as_u64().unwrap();
    assert_eq!(depth, 3 * tokens.len() as u64, "{last}");
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_ca_configured_events_go_over_https() {
    let pki = Pki::new("kiosk test CA");
    let files = tempfile::tempdir().unwrap();
    let stub = up::stub_with(|c| c.tls = Some(pki.server(false))).await;
    assert!(stub.base_url().starts_with("https://127.0.0.1:"));
    let link = Link {
        ca_file: Some(pki.ca_file(files.path())),
        ..Link::default()
    };
    let k = up::start_with(stub, &link, &["cb"], false, |_| {}).await;
    let tokens = submit(&k.kiosk.client, "tls", 2, 100).await;
    delivered(&k.stub, &tokens).await;
    let s = k.kiosk.client.get("/v1/status").await.unwrap().body;
    assert_eq!(s["upstream"]["central-base"]["state"], "up", "{s}");
    k.kiosk.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_certificate_not_trusted_gets_nothing() {
    // The same server, but the kiosk is not given the CA: the system's roots
    // do not know it, and certificates are always checked.
    let pki = Pki::new("a CA the kiosk does not know");
    let stub = up::stub_with(|c| c.tls = Some(pki.server(false))).await;
    // The handshake fails: not even a token request reaches the server.
    handshake_refused(stub, &Link::default(), "untrusted", 200, "UnknownIssuer").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_ca_file_only_that_ca_vouches_for_the_server() {
    // The bank's private CA is configured; the server's certificate comes
    // from another CA (standing for any public one): `ca_file` is the only
    // trust, so the handshake fails. (A public root's signature cannot be
    // made in a test; the built-in roots are off whenever `ca_file` is set,
    // `src/upstream/http.rs`.)
    let bank = Pki::new("the bank's private CA");
    let other = Pki::new("another CA");
    let files = tempfile::tempdir().unwrap();
    let stub = up::stub_with(|c| c.tls = Some(other.server(false))).await;
    let link = Link {
        ca_file: Some(bank.ca_file(files.path())),
        ..Link::default()
    };
    handshake_refused(stub, &link, "private", 300, "UnknownIssuer").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_delivers_with_the_client_certificate() {
    let pki = Pki::new("kiosk test CA");
    let files = tempfile::tempdir().unwrap();
    let stub = up::stub_with(|c| c.tls = Some(pki.server(true))).await;
    let link = Link {
        ca_file: Some(pki.ca_file(files.path())),
        client_cert: Some(pki.client_files(files.path())),
        ..Link::default()
    };
    let k = up::start_with(stub, &link, &["cb"], false, |_| {}).await;
    let tokens = submit(&k.kiosk.client, "mtls", 2, 300).await;
    delivered(&k.stub, &tokens).await;
    k.kiosk.daemon.stop().await;
}

/// When mutual TLS identifies the kiosk, OAuth is optional: with no
/// `[central_base.auth]`, requests come and events go with no token asked
/// for and no `Authorization` sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_alone_identifies_the_kiosk_without_oauth() {
    let pki = Pki::new("kiosk test CA");
    let files = tempfile::tempdir().unwrap();
    let stub = up::stub_with(|c| c.tls = Some(pki.server(true))).await;
    let link = Link {
        ca_file: Some(pki.ca_file(files.path())),
        client_cert: Some(pki.client_files(files.path())),
        no_oauth: true,
        ..Link::default()
    };
    let k = up::start_with(stub, &link, &["cb"], true, |_| {}).await;
    let c = k.stub.control();
    c.enqueue(&up::request("mtls-polled", &up::pan(310)));
    up::until("the polled request acknowledged", 30, || {
        !c.acks().is_empty()
    })
    .await;
    let mut tokens = submit(&k.kiosk.client, "mtls-only", 2, 320).await;
    tokens.push("mtls-polled".into());
    delivered(&k.stub, &tokens).await;
    let received = c.received();
    assert!(
        received.iter().all(|r| r.group != Some(Group::Token)),
        "no token asked for"
    );
    assert!(received.iter().all(|r| r
        .headers
        .iter()
        .all(|(h, _)| !h.eq_ignore_ascii_case("authorization"))));
    k.kiosk.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_without_a_client_certificate_gets_nothing() {
    let pki = Pki::new("kiosk test CA");
    let files = tempfile::tempdir().unwrap();
    let stub = up::stub_with(|c| c.tls = Some(pki.server(true))).await;
    let link = Link {
        ca_file: Some(pki.ca_file(files.path())),
        ..Link::default()
    };
    handshake_refused(stub, &link, "anon", 400, "CertificateRequired").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwt_client_assertion_gets_tokens() {
    let pki = Pki::new("kiosk test CA");
    let files = tempfile::tempdir().unwrap();
    // The kiosk's signing key (EC P-256, PKCS#8): the stub knows only its
    // public half and accepts no secret.
    let signing = KeyPair::generate().unwrap();
    let public = signing.public_key_pem();
    let key_file = up::secret(files.path(), "assertion.pem", &signing.serialize_pem());
    let stub = up::stub_with(|c| {
        c.tls = Some(pki.server(false));
        c.client_secret = None;
        c.client_jwt_key_pem = Some(public);
    })
    .await;
    let link = Link {
        ca_file: Some(pki.ca_file(files.path())),
        assertion_key: Some(key_file),
        ..Link::default()
    };
    let k = up::start_with(stub, &link, &["cb"], false, |_| {}).await;
    let tokens = submit(&k.kiosk.client, "jwt", 2, 500).await;
    delivered(&k.stub, &tokens).await;
    // The token calls carried an assertion, not a secret.
    let token_calls: Vec<_> = k
        .stub
        .control()
        .received()
        .into_iter()
        .filter(|r| r.group == Some(Group::Token))
        .collect();
    assert!(!token_calls.is_empty());
    for r in &token_calls {
        assert_eq!(r.status, Some(200), "{:?}", r.body);
        let form = r.body.to_string();
        assert!(form.contains("client_assertion"), "{form}");
        assert!(!form.contains("client_secret"), "{form}");
    }
    k.kiosk.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_renewed_once_not_in_a_loop() {
    let pki = Pki::new("kiosk test CA");
    let files = tempfile::tempdir().unwrap();
    let stub = up::stub_with(|c| c.tls = Some(pki.server(false))).await;
    let link = Link {
        ca_file: Some(pki.ca_file(files.path())),
        ..Link::default()
    };
    let k = up::start_with(stub, &link, &["cb"], false, |_| {}).await;
    let c = k.stub.control();
    // The next events call is refused although its token is valid.
    c.set_fault(Group::Events, Fault::UnauthorizedOnce, None)
        .await;
    let tokens = submit(&k.kiosk.client, "renew", 2, 600).await;
    delivered(&k.stub, &tokens).await;
    // A few heartbeats later, still no further token request.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let log: Vec<_> = c
        .received()
        .into_iter()
        .filter(|r| matches!(r.group, Some(Group::Token | Group::Events)))
        .collect();
    let calls: Vec<(Group, Option<u16>)> =
        log.iter().map(|r| (r.group.unwrap(), r.status)).collect();
    let token_calls = calls.iter().filter(|(g, _)| *g == Group::Token).count();
    assert_eq!(token_calls, 2, "one token, one renewal: {calls:?}");
    // The first token comes first; the refused events call is followed by
    // the renewal and then by the same call again, accepted.
    assert_eq!(calls[0], (Group::Token, Some(200)), "{calls:?}");
    let refused = calls
        .iter()
        .position(|c| *c == (Group::Events, Some(401)))
        .unwrap_or_else(|| panic!("an events call refused: {calls:?}"));
    assert_eq!(
        calls.iter().filter(|c| c.1 == Some(401)).count(),
        1,
        "{calls:?}"
    );
    assert_eq!(calls[refused + 1], (Group::Token, Some(200)), "{calls:?}");
    assert_eq!(calls[refused + 2], (Group::Events, Some(200)), "{calls:?}");
    assert_eq!(
        log[refused].body,
        log[refused + 2].body,
        "the refused batch is sent again as it was"
    );
    let s = k.kiosk.client.get("/v1/status").await.unwrap().body;
    assert_eq!(s["upstream"]["central-base"]["state"], "up", "{s}");
    k.kiosk.daemon.stop().await;
}
