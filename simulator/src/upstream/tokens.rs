//! Access tokens the stub issued, and the assertion ids (`jti`) already
//! used. Central-base and D1 tokens are kept apart: one is no good for the
//! other's endpoints.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience {
    Cb,
    D1,
}

#[derive(Debug, PartialEq, Eq)]
pub enum TokenError {
    Missing,
    Unknown,
    Expired,
}

#[derive(Default)]
pub struct Tokens {
    issued: HashMap<String, (Audience, Instant)>,
    jtis: HashSet<String>,
}

impl Tokens {
    /// A fresh opaque bearer token (244 random bits).
    pub fn issue(&mut self, audience: Audience, ttl: Duration) -> String {
        let token = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        self.issued
            .insert(token.clone(), (audience, Instant::now() + ttl));
        token
    }

    pub fn check(&self, token: Option<&str>, audience: Audience) -> Result<(), TokenError> {
        let token = token.ok_or(TokenError::Missing)?;
        match self.issued.get(token) {
            Some((a, _)) if *a != audience => Err(TokenError::Unknown),
            Some((_, until)) if Instant::now() >= *until => Err(TokenError::Expired),
            Some(_) => Ok(()),
            None => Err(TokenError::Unknown),
        }
    }

    /// Makes every issued token expired now (tests of renewal).
    pub fn expire_all(&mut self) {
        let now = Instant::now();
        for (_, until) in self.issued.values_mut() {
            *until = now;
        }
    }

    /// Records an assertion id; `false` when it was used before.
    pub fn use_jti(&mut self, jti: &str) -> bool {
        self.jtis.insert(jti.to_owned())
    }
}

/// The token of an `Authorization: Bearer ...` header.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let v = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_expire_and_keep_their_audience() {
        let mut t = Tokens::default();
        let cb = t.issue(Audience::Cb, Duration::from_secs(60));
        assert_eq!(t.check(Some(&cb), Audience::Cb), Ok(()));
        assert_eq!(t.check(Some(&cb), Audience::D1), Err(TokenError::Unknown));
        assert_eq!(
            t.check(Some("nope"), Audience::Cb),
            Err(TokenError::Unknown)
        );
        assert_eq!(t.check(None, Audience::Cb), Err(TokenError::Missing));
        t.expire_all();
        assert_eq!(t.check(Some(&cb), Audience::Cb), Err(TokenError::Expired));
        assert!(t.use_jti("a"));
        assert!(!t.use_jti("a"));
    }
}
