//! The three kinds of receiver, behind one `send`: the central base's events
//! endpoint (batches), an issuer's webhook (Standard Webhooks, one message
//! per status change) and D1's Track Card API (once per produced card).
//!
//! A sink turns each attempt into a [`Verdict`]; the relay does the rest.
//! Failures of the way there (link, time-out, our credentials) are also
//! reported to [`Health`] with their SAT_ code.

use super::auth::{self, Called, TokenSource};
use super::config::{self, UpstreamConfig};
use super::forms::{self, Form};
use super::health::Health;
use super::http;
use super::policy::{self, Answer, Verdict};
use super::signing::Signer;
use crate::store::{Due, SinkSpec, Status};
use std::sync::Arc;
use std::time::Duration;

/// What became of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub verdict: Verdict,
    /// D1's operation id for a tracked card.
    pub d1_operation: Option<String>,
}

impl Outcome {
    fn of(verdict: Verdict) -> Outcome {
        Outcome {
            verdict,
            d1_operation: None,
        }
    }
}

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
    in_flight: usize,
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
            sinks.push(Sink {
                name: config::D1_SINK.into(),
                kind: Kind::D1 {
                    tokens: Box::new(TokenSource::new("upstream.d1", client.clone(), &d.auth)?),
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

    /// Sends `items` (at most one per card); one outcome per item, in order,
    /// `None` for an item not attempted: after a failure that calls for a
    /// retry, no further request of the round is started (the link or the
    /// receiver is failing; the rest wait, untouched, for the next round).
    pub async fn send(&self, items: &[Due]) -> Vec<Option<Outcome>> {
        match &self.kind {
            Kind::CentralBase { tokens, events_url } => {
                let out = self.cb_batch(tokens, events_url, items).await;
                // One bad event must not sink its batch: a refused batch
                // is sent again one by one, to find which.
                if items.len() > 1 && matches!(out.verdict, Verdict::Dead { .. }) {
                    let mut each = Vec::with_capacity(items.len());
                    for it in items {
                        let one = std::slice::from_ref(it);
                        each.push(Some(Outcome::of(
                            self.cb_batch(tokens, events_url, one).await.verdict,
                        )));
                    }
                    return each;
                }
                vec![Some(out); items.len()]
            }
            Kind::Webhook { url, signer, form } => {
                self.bounded(items, |it| self.webhook(url, signer, *form, it))
                    .await
            }
            Kind::D1 {
                tokens,
                base,
                issuer_id,
                site,
            } => {
                self.bounded(items, |it| self.d1(tokens, base, issuer_id, site, it))
                    .await
            }
        }
    }

    /// `send` of one item each, at most `in_flight` at once; none started
    /// after a verdict to retry.
    async fn bounded<'a, F, Fut>(&self, items: &'a [Due], send: F) -> Vec<Option<Outcome>>
    where
        F: Fn(&'a Due) -> Fut,
        Fut: std::future::Future<Output = Outcome>,
    {
        use futures::stream::{FuturesUnordered, StreamExt};
        let mut out: Vec<Option<Outcome>> = vec![None; items.len()];
        let mut running = FuturesUnordered::new();
        let (mut next, mut failing) = (0, false);
        loop {
            while !failing && running.len() < self.in_flight.max(1) && next < items.len() {
                let (i, sent) = (next, send(&items[next]));
                running.push(async move { (i, sent.await) });
                next += 1;
            }
            let Some((i, o)) = running.next().await else {
                return out;
            };
            failing |= matches!(o.verdict, Verdict::Retry { .. });
            out[i] = Some(o);
        }
    }

    async fn cb_batch(&self, tokens: &TokenSource, url: &str, items: &[Due]) -> Outcome {
        let events: Vec<_> = items
            .iter()
            .map(|d| forms::envelope(&d.job, &d.event))
            .collect();
        let body = match serde_json::to_vec(&serde_json::json!({ "events": events })) {
            Ok(b) => bytes::Bytes::from(b),
            Err(e) => return Outcome::of(Verdict::Dead { why: e.to_string() }),
        };
        let called = auth::call(tokens, |token| {
            self.http
                .post(url)
                .bearer_auth(token)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
        })
        .await;
        Outcome::of(self.judge(called, policy::classify))
    }

    async fn webhook(&self, url: &str, signer: &Signer, form: Form, item: &Due) -> Outcome {
        let body = match serde_json::to_vec(&forms::webhook_body(form, &item.job, &item.event)) {
            Ok(b) => b,
            Err(e) => return Outcome::of(Verdict::Dead { why: e.to_string() }),
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
        let (answer, _) = http::answer(result).await;
        let verdict = policy::classify(&answer);
        self.health.observe(&self.name, &answer);
        Outcome::of(match (&answer, verdict) {
            // A webhook endpoint answering 401 refuses our signature: the
            // secret is wrong on one side; the event is fine and waits.
            (Answer::Status { code: 401, .. }, Verdict::Dead { why }) => Verdict::Retry {
                why: format!(
                    "{why}: the receiver refuses the signature (check the webhook secret)"
                ),
                not_before: None,
            },
            (_, v) => v,
        })
    }

    async fn d1(
        &self,
        tokens: &TokenSource,
        base: &str,
        issuer_id: &str,
        site: &str,
        item: &Due,
    ) -> Outcome {
        let card_id = &item.job.meta.card_id;
        if card_id.is_empty() {
            return Outcome::of(Verdict::Dead {
                why: "the card has no cardId: D1 cannot be told".into(),
            });
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
            Err(e) => return Outcome::of(Verdict::Dead { why: e.to_string() }),
        };
        let body = serde_json::json!({ "trackingType": "PRODUCTION", "productionSite": site });
        let called = auth::call(tokens, |token| {
            self.http.post(url.clone()).bearer_auth(token).json(&body)
        })
        .await;
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
        let mut out = Outcome::of(self.judge(called, d1_classify));
        out.d1_operation = op;
        out
    }

    /// The verdict of an authenticated call; the link's health on the way.
    fn judge(&self, called: Called, classify: fn(&Answer) -> Verdict) -> Verdict {
        match called {
            Called::NoToken(e) => {
                self.health.no_token(&self.name, &e);
                Verdict::Retry {
                    why: e.to_string(),
                    not_before: None,
                }
            }
            Called::Answered(answer, _) => {
                self.health.observe(&self.name, &answer);
                match (&answer, classify(&answer)) {
                    // Still refused after a renewed token: our credentials,
                    // not the event. It waits until they are fixed.
                    (Answer::Status { code: 401, .. }, Verdict::Dead { why }) => Verdict::Retry {
                        why: format!("{why}: the access token is refused even renewed"),
                        not_before: None,
                    },
                    (_, v) => v,
                }
            }
        }
    }
}

/// D1's tables: 503 and time-outs may be retried; every error it documents
/// (400, 403, 404, and 500 `INTERNAL_ERROR`) says "Retry Possible: no".
pub fn d1_classify(answer: &Answer) -> Verdict {
    match answer {
        Answer::Status {
            code: 500, detail, ..
        } => Verdict::Dead {
            why: policy::describe(500, detail),
        },
        other => policy::classify(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn d1_errors_follow_its_tables() {
        let s = |code| Answer::Status {
            code,
            retry_after: None,
            detail: String::new(),
        };
        assert!(matches!(d1_classify(&s(202)), Verdict::Delivered));
        assert!(matches!(d1_classify(&s(503)), Verdict::Retry { .. }));
        for code in [400, 403, 404, 500] {
            assert!(
                matches!(d1_classify(&s(code)), Verdict::Dead { .. }),
                "{code}"
            );
        }
        assert!(matches!(
            d1_classify(&Answer::Timeout),
            Verdict::Retry { .. }
        ));
    }
}
