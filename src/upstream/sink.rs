//! The three kinds of receiver, behind one `send`: the central base's events
//! endpoint (batches), an issuer's webhook (Standard Webhooks, one message
//! per status change) and D1's Track Card API (once per produced card).
//!
//! A sink sends one request and reads its answer as a [`Judged`]; the
//! scheduler decides what that means and the relay does the rest. Failures
//! of the way there (link, time-out, our credentials) are also reported to
//! [`Health`] with their SAT_ code.

use super::auth::{self, Called, TokenSource};
use super::config::{self, UpstreamConfig};
use super::forms::{self, Form};
use super::health::Health;
use super::http;
use super::policy::{self, Answer, Judged, Receiver};
use super::signing::Signer;
use crate::store::{Due, SinkSpec, Status};
use std::sync::Arc;
use std::time::Duration;

enum Kind {
    CentralBase {
        tokens: Arc<TokenSource>,
        events_url: String,
    },
    Webhook {
        url: String,
        signer: Signer,
        form: Form,
    },
    D1 {
        tokens: Box<TokenSource>,
        base: String,
        issuer_id: String,
        site: String,
    },
}

/// One receiver.
pub struct Sink {
    pub name: String,
    http: reqwest::Client,
    kind: Kind,
    /// Deliveries taken per round (one store transaction records them).
    pub batch: usize,
    /// Requests in flight at once (webhook, D1).
    pub in_flight: usize,
    health: Health,
}

/// A webhook's or D1's round: this many deliveries per request in flight,
/// so that recording outcomes (one transaction, one fsync) is not paid per
/// handful of requests.
const ROUND_PER_REQUEST_IN_FLIGHT: usize = 8;

impl Sink {
    /// Every sink the configuration names. The central base's token source
    /// is shared with its intake (`cb_tokens`).
    pub fn all(
        cfg: &UpstreamConfig,
        kiosk_id: &str,
        cb: Option<(&reqwest::Client, &Arc<TokenSource>)>,
        health: &Health,
    ) -> Result<Vec<Sink>, String> {
        let mut sinks = Vec::new();
        if let (Some(c), Some((client, tokens))) = (&cfg.central_base, cb) {
            if c.events {
                sinks.push(Sink {
                    name: config::CENTRAL_BASE_SINK.into(),
                    http: client.clone(),
                    kind: Kind::CentralBase {
                        tokens: tokens.clone(),
                        events_url: format!(
                            "{}/kiosks/{}/events",
                            c.url.trim_end_matches('/'),
                            kiosk_id
                        ),
                    },
                    batch: c.batch,
                    in_flight: 1,
                    health: health.clone(),
                });
            }
        }
        for (i, w) in cfg.webhooks.iter().enumerate() {
            let at = format!("upstream.webhook[{i}]");
            let src = super::secret::SecretSource::from_keys(
                "secret",
                w.secret_file.as_ref(),
                w.secret_credential.as_ref(),
            )?
            .ok_or_else(|| format!("{at}: no secret"))?;
            let signer = Signer::parse(&src.read()?).map_err(|e| format!("{at} secret: {e}"))?;
            sinks.push(Sink {
                name: w.name.clone(),
                http: http::client(&at, &w.tls, Duration::from_millis(w.timeout_ms))?,
                kind: Kind::Webhook {
                    url: w.url.clone(),
                    signer,
                    form: w.form,
                },
                batch: w.concurrency * ROUND_PER_REQUEST_IN_FLIGHT,
                in_flight: w.concurrency,
                health: health.clone(),
            });
        }
        if let Some(d) = &cfg.d1 {
            let client = http::client("upstream.d1", &d.tls, Duration::from_millis(d.timeout_ms))?;
            let tokens = TokenSource::new("upstream.d1", client.clone(), Some(&d.auth))?;
            // D1's answers tell the clock's skew too (token and track calls).
            let h = health.clone();
            tokens.observe_clock(move |skew| h.clock_skew(config::D1_SINK, skew));
            sinks.push(Sink {
                name: config::D1_SINK.into(),
                kind: Kind::D1 {
                    tokens: Box::new(tokens),
                    base: d.url.trim_end_matches('/').to_string(),
                    issuer_id: d.issuer_id.clone(),
                    site: d
                        .production_site
                        .clone()
                        .unwrap_or_else(|| kiosk_id.to_string()),
                },
                http: client,
                batch: d.concurrency * ROUND_PER_REQUEST_IN_FLIGHT,
                in_flight: d.concurrency,
                health: health.clone(),
            });
        }
        for s in &sinks {
            health.register(&s.name);
        }
        Ok(sinks)
    }

    /// How the store files its deliveries.
    pub fn spec(&self) -> SinkSpec {
        let (kind, statuses) = match &self.kind {
            Kind::CentralBase { .. } => ("central_base", None),
            Kind::Webhook { .. } => ("webhook", None),
            // D1 is told once a card is produced; nothing else.
            Kind::D1 { .. } => ("d1", Some(vec![Status::Produced])),
        };
        SinkSpec {
            name: self.name.clone(),
            kind: kind.into(),
            statuses,
        }
    }

    /// How the scheduler treats this sink: one request carries many
    /// events (the central base), and each answer must be recorded as soon
    /// as it is known (D1: it has no idempotency key, so an answer lost to
    /// a crash means a second call).
    pub fn batched(&self) -> bool {
        matches!(self.kind, Kind::CentralBase { .. })
    }

    pub fn record_each(&self) -> bool {
        matches!(self.kind, Kind::D1 { .. })
    }

    /// Sends one request: `items` in one batch (the central base) or the
    /// one item (webhook, D1).
    pub async fn request(&self, items: &[Due]) -> Judged {
        match (&self.kind, items) {
            (Kind::CentralBase { tokens, events_url }, _) => {
                self.cb_batch(tokens, events_url, items).await
            }
            (Kind::Webhook { url, signer, form }, [item]) => {
                self.webhook(url, signer, *form, item).await
            }
            (
                Kind::D1 {
                    tokens,
                    base,
                    issuer_id,
                    site,
                },
                [item],
            ) => self.d1(tokens, base, issuer_id, site, item).await,
            (_, _) => Judged::Refused {
                why: format!("{} takes one event per request", self.name),
            },
        }
    }

    async fn cb_batch(&self, tokens: &TokenSource, url: &str, items: &[Due]) -> Judged {
        let events: Vec<_> = items
            .iter()
            .map(|d| forms::envelope(&d.job, &d.event))
            .collect();
        let body = match serde_json::to_vec(&serde_json::json!({ "events": events })) {
            Ok(b) => bytes::Bytes::from(b),
            Err(e) => return Judged::Refused { why: e.to_string() },
        };
        let called = auth::call(tokens, || {
            self.http
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
        })
        .await;
        self.judge(called, Receiver::CentralBase)
    }

    async fn webhook(&self, url: &str, signer: &Signer, form: Form, item: &Due) -> Judged {
        let body = match serde_json::to_vec(&forms::webhook_body(form, &item.job, &item.event)) {
            Ok(b) => b,
            Err(e) => return Judged::Refused { why: e.to_string() },
        };
        // The event id is the message id: the same across retries, the
        // receiver's de-duplication key. The time stamp is the attempt's.
        let id = format!("msg_{}", item.event.id.replace('-', ""));
        let ts = http::unix_now();
        let sig = signer.sign(&id, ts, &body);
        let result = self
            .http
            .post(url)
            .header("webhook-id", &id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", sig)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await;
        let got = http::read(result, http::BODY_LIMIT).await;
        if let Some(skew) = got.skew_ms {
            self.health.clock_skew(&self.name, skew);
        }
        self.health.observe(&self.name, &got.answer);
        policy::judge(&got.answer, Receiver::Webhook)
    }

    async fn d1(
        &self,
        tokens: &TokenSource,
        base: &str,
        issuer_id: &str,
        site: &str,
        item: &Due,
    ) -> Judged {
        let card_id = &item.job.meta.card_id;
        if card_id.is_empty() {
            return Judged::Refused {
                why: "the card has no cardId: D1 cannot be told".into(),
            };
        }
        let url = match reqwest::Url::parse(&format!("{base}/issuers/")).and_then(|u| {
            let mut u = u;
            u.path_segments_mut()
                .map_err(|_| url::ParseError::RelativeUrlWithCannotBeABaseBase)?
                .pop_if_empty()
                .extend([issuer_id, "physicalCards", card_id, "track"]);
            Ok(u)
        }) {
            Ok(u) => u,
            Err(e) => return Judged::Refused { why: e.to_string() },
        };
        let body = serde_json::json!({ "trackingType": "PRODUCTION", "productionSite": site });
        let called = auth::call(tokens, || self.http.post(url.clone()).json(&body)).await;
        let op = match &called {
            Called::Answered(
                Answer::Status {
                    code: 202 | 200, ..
                },
                Some(b),
            ) => serde_json::from_slice::<serde_json::Value>(b)
                .ok()
                .and_then(|v| v.get("operationId")?.as_str().map(str::to_string))
                .filter(|id| {
                    !id.is_empty()
                        && id.len() <= 64
                        && id
                            .bytes()
                            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
                }),
            _ => None,
        };
        match self.judge(called, Receiver::D1) {
            Judged::Delivered { .. } => Judged::Delivered { operation: op },
            other => other,
        }
    }

    /// The endpoint fails as a whole (the scheduler paused the sink): health
    /// shows it with its code.
    pub fn down(&self, code: crate::codes::ErrorCode, why: &str) {
        self.health.down(&self.name, code, why);
    }

    /// What an authenticated call came to; the link's health on the way.
    fn judge(&self, called: Called, receiver: Receiver) -> Judged {
        match called {
            Called::NoToken(e) => {
                self.health.no_token(&self.name, &e);
                Judged::endpoint(super::health::auth_code(&e), e.to_string())
            }
            Called::Answered(answer, _) => {
                self.health.observe(&self.name, &answer);
                policy::judge(&answer, receiver)
            }
        }
    }
}
