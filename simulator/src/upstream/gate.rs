//! What every upstream call goes through before its handler's own work:
//! injected faults first (they stand for failures in front of the service),
//! then the bearer token, then the kiosk id.
//!
//! The `Err` of these checks is the answer itself, built once per refused
//! call: boxing it would buy nothing.
#![allow(clippy::result_large_err)]

use super::answer;
use super::faults::Group;
use super::state::Shared;
use super::tokens::{bearer, Audience, TokenError};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use std::time::Duration;

/// Applies the faults in force for `group`: waits out `slow`, answers for
/// `status`/`unavailable`/`unauthorized_once`. Gives a data-error code to
/// answer when one is in force (data fetches only).
pub async fn faults(shared: &Shared, group: Group) -> Result<Option<String>, Response> {
    let decision = shared.lock().faults.take(group);
    if decision.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(decision.delay_ms)).await;
    }
    match decision.answer {
        Some(f) => Err(answer::fault(group, &f)),
        None => Ok(decision.data_error),
    }
}

/// A `poison` fault's answer when the call's body or path contains its
/// text: the receiver fails that payload alone.
pub fn poison(shared: &Shared, group: Group, body: &[u8], path: &str) -> Result<(), Response> {
    let seen = format!("{path} {}", String::from_utf8_lossy(body));
    match shared.lock().faults.poisoned(group, &seen) {
        Some(n) => Err(answer::fault(group, &super::faults::Fault::Status(n))),
        None => Ok(()),
    }
}

/// The central base's bearer check and kiosk check. Under mutual TLS the
/// client's certificate identifies the kiosk (the handshake refused any
/// other): a call without a bearer token is then let through, one with a
/// token still has it checked.
pub fn cb(shared: &Shared, headers: &HeaderMap, kiosk: &str) -> Result<(), Response> {
    let mutual = shared
        .cfg
        .tls
        .as_ref()
        .is_some_and(|t| t.client_ca_pem.is_some());
    let token = bearer(headers);
    let checked = if mutual && token.is_none() {
        Ok(())
    } else {
        shared.lock().tokens.check(token, Audience::Cb).map(drop)
    };
    if let Err(e) = checked {
        let why = match e {
            TokenError::Missing => "bearer token missing",
            TokenError::Unknown => "unknown access token",
            TokenError::Expired => "access token expired",
        };
        return Err(answer::cb(
            StatusCode::UNAUTHORIZED,
            "CB_AUTHENTICATION_FAILED",
            why,
        ));
    }
    if kiosk != shared.cfg.kiosk_id {
        return Err(answer::cb(
            StatusCode::NOT_FOUND,
            "KIOSK_ID_NOT_FOUND",
            format!("no kiosk {kiosk:?}"),
        ));
    }
    Ok(())
}

/// D1's bearer check.
pub fn d1(shared: &Shared, headers: &HeaderMap) -> Result<(), Response> {
    let checked = shared.lock().tokens.check(bearer(headers), Audience::D1);
    checked.map_err(|_| {
        answer::d1(
            StatusCode::UNAUTHORIZED,
            "AUTHORIZER_UNAUTHORIZED",
            "Access token not valid",
        )
    })
}
