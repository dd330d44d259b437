//! The stub over real TLS with a CA and certificates made here (rcgen):
//! server authentication, then mutual TLS where a client without a
//! certificate is refused and one with a CA-issued certificate gets in.

mod upstream_util;

use printer_sim::upstream::{StubConfig, StubHandle, TlsConfig};
use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use serde_json::Value;
use upstream_util::*;

struct Pki {
    ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    fn new() -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "stub test CA");
        let key = KeyPair::generate().unwrap();
        let ca_pem = params.self_signed(&key).unwrap().pem();
        Pki {
            ca_pem,
            issuer: Issuer::new(params, key),
        }
    }

    /// (certificate PEM, key PEM) issued by the CA.
    fn issue(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

async fn tls_stub(pki: &Pki, mutual: bool) -> StubHandle {
    let (cert, key) = pki.issue(
        &["127.0.0.1", "localhost"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    start(StubConfig {
        tls: Some(TlsConfig {
            cert_chain_pem: cert,
            key_pem: key,
            client_ca_pem: mutual.then(|| pki.ca_pem.clone()),
        }),
        ..StubConfig::default()
    })
    .await
}

fn tls_client(pki: &Pki, identity: Option<(String, String)>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .no_proxy()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap());
    if let Some((cert, key)) = identity {
        let pem = format!("{cert}{key}");
        b = b.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
    }
    b.build().unwrap()
}

#[tokio::test]
async fn tls_serves_the_protocol() {
    let pki = Pki::new();
    let stub = tls_stub(&pki, false).await;
    assert!(stub.base_url().starts_with("https://127.0.0.1:"));
    let c = tls_client(&pki, None);
    let tok = token(&c, &stub).await;
    let r = c
        .get(kiosk_url(&stub, "requests?wait=0"))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A client that does not trust the CA is refused by its own check.
    let stranger = reqwest::Client::builder()
        .no_proxy()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .build()
        .unwrap();
    assert!(stranger.post(stub.token_url()).send().await.is_err());
}

#[tokio::test]
async fn mutual_tls_refuses_a_client_without_certificate() {
    let pki = Pki::new();
    let stub = tls_stub(&pki, true).await;

    let anonymous = tls_client(&pki, None);
    let err = anonymous
        .post(stub.token_url())
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap_err();
    eprintln!("refused as expected: {err:?}");

    // A certificate from another CA is refused too.
    let other = Pki::new();
    let foreign = other.issue(&["satellite"], ExtendedKeyUsagePurpose::ClientAuth);
    let c = tls_client(&pki, Some(foreign));
    assert!(c.post(stub.token_url()).send().await.is_err());

    let id = pki.issue(&["satellite"], ExtendedKeyUsagePurpose::ClientAuth);
    let c = tls_client(&pki, Some(id));
    let tok = token(&c, &stub).await;
    let r = c
        .get(kiosk_url(&stub, "requests?wait=0"))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["requests"].as_array().unwrap().len(), 0);
    // Refused handshakes never reach the log.
    assert_eq!(stub.control().received().len(), 2);
}

#[tokio::test]
async fn down_and_back_over_tls() {
    let pki = Pki::new();
    let stub = tls_stub(&pki, false).await;
    let c = tls_client(&pki, None);
    let tok = token(&c, &stub).await;
    let control = stub.control();
    control
        .set_fault(
            printer_sim::upstream::Group::All,
            printer_sim::upstream::Fault::Down,
            None,
        )
        .await;
    assert!(c
        .get(kiosk_url(&stub, "requests?wait=0"))
        .bearer_auth(&tok)
        .send()
        .await
        .is_err());
    control.clear_faults(None).await;
    let r = c
        .get(kiosk_url(&stub, "requests?wait=0"))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
