//! RFC 7523 client assertions: a JWT signed ES256 or RS256 with the key the
//! stub was given (a PEM SubjectPublicKeyInfo). Written small and strict
//! (RFC 8725): the algorithm must match the key's type, never `none` or an
//! HMAC, and the claims the protocol names are all checked.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::signature::{self, UnparsedPublicKey};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::SubjectPublicKeyInfoDer;
use serde_json::Value;

/// A verification key and the one algorithm it is used with.
#[derive(Clone, Debug)]
pub enum AssertionKey {
    /// Uncompressed P-256 point.
    Es256(Vec<u8>),
    /// PKCS#1 RSAPublicKey DER.
    Rs256(Vec<u8>),
}

const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

impl AssertionKey {
    /// Reads a `-----BEGIN PUBLIC KEY-----` PEM.
    pub fn from_pem(pem: &str) -> Result<AssertionKey, String> {
        let spki = SubjectPublicKeyInfoDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| format!("not a PEM public key: {e}"))?;
        let (seq, _) = tlv(spki.as_ref(), 0x30).ok_or("bad SubjectPublicKeyInfo")?;
        let (alg, rest) = tlv(seq, 0x30).ok_or("bad AlgorithmIdentifier")?;
        let (bits, _) = tlv(rest, 0x03).ok_or("bad subjectPublicKey")?;
        let key = match bits.split_first() {
            Some((0, key)) => key.to_vec(),
            _ => return Err("bad subjectPublicKey".into()),
        };
        let (oid, params) = tlv(alg, 0x06).ok_or("bad algorithm")?;
        if oid == OID_EC_PUBLIC_KEY {
            match tlv(params, 0x06) {
                Some((curve, _)) if curve == OID_P256 => Ok(AssertionKey::Es256(key)),
                _ => Err("only P-256 EC keys are supported".into()),
            }
        } else if oid == OID_RSA {
            Ok(AssertionKey::Rs256(key))
        } else {
            Err("only EC P-256 and RSA keys are supported".into())
        }
    }

    fn alg(&self) -> &'static str {
        match self {
            AssertionKey::Es256(_) => "ES256",
            AssertionKey::Rs256(_) => "RS256",
        }
    }

    fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        match self {
            AssertionKey::Es256(k) => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, k)
                    .verify(message, sig)
                    .is_ok()
            }
            AssertionKey::Rs256(k) => {
                UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, k)
                    .verify(message, sig)
                    .is_ok()
            }
        }
    }
}

/// One DER tag-length-value with the expected tag: its content and what
/// follows it.
fn tlv(der: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, rest) = der.split_first()?;
    if t != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |a, b| (a << 8) | *b as usize);
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// What an assertion must say.
pub struct Expect<'a> {
    pub client_id: &'a str,
    /// The token URL as the client may have addressed it.
    pub audiences: &'a [String],
    pub now_unix: i64,
}

/// Checks an assertion's signature and claims; gives its `jti` (which the
/// caller must still check for reuse).
pub fn verify(key: &AssertionKey, jwt: &str, expect: &Expect<'_>) -> Result<String, String> {
    let mut parts = jwt.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not a compact JWS".into());
    };
    let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|_| "bad base64url");
    let header: Value = serde_json::from_slice(&decode(h)?).map_err(|_| "bad header")?;
    if header["alg"].as_str() != Some(key.alg()) {
        return Err(format!("alg must be {}", key.alg()));
    }
    let sig = decode(s)?;
    if !key.verify(format!("{h}.{p}").as_bytes(), &sig) {
        return Err("bad signature".into());
    }
    let claims: Value = serde_json::from_slice(&decode(p)?).map_err(|_| "bad claims")?;
    for claim in ["iss", "sub"] {
        if claims[claim].as_str() != Some(expect.client_id) {
            return Err(format!("{claim} must be the client id"));
        }
    }
    let aud_ok = match &claims["aud"] {
        Value::String(a) => expect.audiences.contains(a),
        Value::Array(list) => list.iter().any(|a| {
            a.as_str()
                .is_some_and(|a| expect.audiences.iter().any(|e| e == a))
        }),
        _ => false,
    };
    if !aud_ok {
        return Err("aud must be the token URL".into());
    }
    match claims["exp"].as_f64() {
        Some(exp) if exp > expect.now_unix as f64 => {}
        Some(_) => return Err("assertion expired".into()),
        None => return Err("exp missing".into()),
    }
    if let Some(nbf) = claims.get("nbf").and_then(Value::as_f64) {
        // A minute of leeway for clock skew between kiosk and stub.
        if nbf > (expect.now_unix + 60) as f64 {
            return Err("assertion not yet valid".into());
        }
    }
    match claims["jti"].as_str() {
        Some(j) if !j.is_empty() => Ok(j.to_owned()),
        _ => Err("jti missing".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

    fn es256() -> (EcdsaKeyPair, AssertionKey) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        // Wrap the point in an SPKI by hand, as a PEM would carry it.
        let point = pair.public_key().as_ref().to_vec();
        let mut alg = vec![0x06, OID_EC_PUBLIC_KEY.len() as u8];
        alg.extend_from_slice(OID_EC_PUBLIC_KEY);
        alg.extend_from_slice(&[0x06, OID_P256.len() as u8]);
        alg.extend_from_slice(OID_P256);
        let mut body = vec![0x30, alg.len() as u8];
        body.extend(alg);
        body.extend_from_slice(&[0x03, point.len() as u8 + 1, 0]);
        body.extend(point);
        let mut spki = vec![0x30, body.len() as u8];
        spki.extend(body);
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(&spki)
        );
        (pair, AssertionKey::from_pem(&pem).unwrap())
    }

    fn sign(pair: &EcdsaKeyPair, header: &Value, claims: &Value) -> String {
        let h = URL_SAFE_NO_PAD.encode(header.to_string());
        let p = URL_SAFE_NO_PAD.encode(claims.to_string());
        let sig = pair
            .sign(&SystemRandom::new(), format!("{h}.{p}").as_bytes())
            .unwrap();
        format!("{h}.{p}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }

    #[test]
    fn checks_signature_and_claims() {
        let (pair, key) = es256();
        let auds = vec!["https://cb/oauth/token".to_owned()];
        let expect = Expect {
            client_id: "sat",
            audiences: &auds,
            now_unix: 1000,
        };
        let header = serde_json::json!({"alg": "ES256", "typ": "JWT"});
        let good = serde_json::json!({"iss": "sat", "sub": "sat",
            "aud": "https://cb/oauth/token", "exp": 1060, "jti": "j1"});
        assert_eq!(
            verify(&key, &sign(&pair, &header, &good), &expect),
            Ok("j1".into())
        );

        let mut wrong_aud = good.clone();
        wrong_aud["aud"] = "https://elsewhere".into();
        let mut expired = good.clone();
        expired["exp"] = 999.into();
        let mut wrong_sub = good.clone();
        wrong_sub["sub"] = "other".into();
        for claims in [wrong_aud, expired, wrong_sub] {
            assert!(verify(&key, &sign(&pair, &header, &claims), &expect).is_err());
        }
        let none = serde_json::json!({"alg": "none"});
        assert!(verify(&key, &sign(&pair, &none, &good), &expect).is_err());
        let mut tampered = sign(&pair, &header, &good);
        tampered.push('A');
        assert!(verify(&key, &tampered, &expect).is_err());
    }
}
