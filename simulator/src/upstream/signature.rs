//! Standard Webhooks signatures, written from the specification: the signed
//! content is `{webhook-id}.{webhook-timestamp}.{body}`, the signature
//! `v1,` + base64(HMAC-SHA256(key, content)) where the key is the base64
//! after `whsec_`. `webhook-signature` may carry several space-separated
//! signatures and the receiver may hold several secrets (rotation): any
//! match is enough. Comparison is constant-time; the timestamp must be
//! within the tolerance either way (replays, and clocks far ahead).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ring::hmac;

#[derive(Debug, PartialEq, Eq)]
pub enum VerifyError {
    /// A configured secret is not `whsec_` + base64.
    BadSecret,
    /// `webhook-timestamp` is not unix seconds.
    BadTimestamp,
    /// Outside the tolerance.
    Stale,
    /// No signature matched any secret.
    NoMatch,
}

/// The HMAC key of a `whsec_...` secret.
fn key(secret: &str) -> Result<hmac::Key, VerifyError> {
    let b64 = secret.strip_prefix("whsec_").unwrap_or(secret);
    let bytes = STANDARD.decode(b64).map_err(|_| VerifyError::BadSecret)?;
    Ok(hmac::Key::new(hmac::HMAC_SHA256, &bytes))
}

fn mac(key: &hmac::Key, id: &str, timestamp: &str, body: &[u8]) -> Vec<u8> {
    let mut ctx = hmac::Context::with_key(key);
    ctx.update(id.as_bytes());
    ctx.update(b".");
    ctx.update(timestamp.as_bytes());
    ctx.update(b".");
    ctx.update(body);
    ctx.sign().as_ref().to_vec()
}

/// The `v1,...` signature of a message (for senders and tests).
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Result<String, VerifyError> {
    let tag = mac(&key(secret)?, id, &timestamp.to_string(), body);
    Ok(format!("v1,{}", STANDARD.encode(tag)))
}

/// Equal length and equal bytes, in time independent of where they differ
/// (also used for client secrets).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks a message against the configured secrets.
pub fn verify(
    secrets: &[String],
    id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now_unix: i64,
    tolerance_s: i64,
) -> Result<(), VerifyError> {
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| VerifyError::BadTimestamp)?;
    if (now_unix - ts).abs() > tolerance_s {
        return Err(VerifyError::Stale);
    }
    // Only `v1` (symmetric) signatures are understood; others are skipped.
    let given: Vec<Vec<u8>> = signatures
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|b64| STANDARD.decode(b64).ok())
        .collect();
    let mut matched = false;
    for secret in secrets {
        let expected = mac(&key(secret)?, id, timestamp.trim(), body);
        for g in &given {
            matched |= constant_time_eq(&expected, g);
        }
    }
    if matched {
        Ok(())
    } else {
        Err(VerifyError::NoMatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The specification's published test vector.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn the_published_vector() {
        assert_eq!(sign(SECRET, ID, TS, BODY).unwrap(), SIG);
        let secrets = [SECRET.to_owned()];
        assert_eq!(
            verify(&secrets, ID, "1614265330", SIG, BODY, TS, 300),
            Ok(())
        );
    }

    #[test]
    fn rotation_any_secret_any_signature() {
        let other = format!("whsec_{}", STANDARD.encode([7u8; 32]));
        let both = [other.clone(), SECRET.to_owned()];
        let sigs = format!("v1,AAAA v1a,xyz {SIG}");
        assert_eq!(
            verify(&both, ID, "1614265330", &sigs, BODY, TS, 300),
            Ok(())
        );
        let only_other = [other];
        assert_eq!(
            verify(&only_other, ID, "1614265330", SIG, BODY, TS, 300),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn tampering_and_time() {
        let secrets = [SECRET.to_owned()];
        let v = |id: &str, ts: &str, body: &[u8], now: i64| {
            verify(&secrets, id, ts, SIG, body, now, 300)
        };
        assert_eq!(
            v("msg_other", "1614265330", BODY, TS),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            v(ID, "1614265330", b"{\"test\": 1}", TS),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(v(ID, "1614265330", BODY, TS + 301), Err(VerifyError::Stale));
        assert_eq!(v(ID, "1614265330", BODY, TS - 301), Err(VerifyError::Stale));
        assert_eq!(v(ID, "soon", BODY, TS), Err(VerifyError::BadTimestamp));
        assert_eq!(v(ID, "1614265330", BODY, TS + 300), Ok(()));
    }
}
