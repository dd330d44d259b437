//! Starts what the configuration asks upstream: one relay per sink, the
//! central base's intake and heartbeat, and the outbox's upkeep (pruning,
//! the size alarm). Stops them all with one token. Each runs under a
//! supervisor (`supervisor.rs`): one that panics or returns on its own is
//! logged, shown in health and started again.

use super::central::CentralBase;
use super::sink::Sink;
use super::supervisor::{self, Start};
use crate::engine::Engine;
use futures::FutureExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How often delivered history is pruned and the store's size checked.
const UPKEEP_EVERY: Duration = Duration::from_secs(600);

/// Where health shows a failure of the upkeep task (it has no link).
pub const UPKEEP: &str = "upkeep";

/// The running upstream tasks.
pub struct Upstream {
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

/// Every client built for a configuration, not started yet: a reload
/// builds them before it stops the running ones, so that a configuration
/// they refuse leaves the old ones running.
pub struct Prepared {
    cfg: super::UpstreamConfig,
    kiosk: String,
    cb: Option<Arc<CentralBase>>,
    sinks: Vec<Sink>,
}

impl Upstream {
    /// Builds every client (so that a bad certificate or an unreadable
    /// secret stops the start, naming the key), registers the sinks with
    /// the store, and starts the tasks.
    pub async fn start(engine: &Engine) -> Result<Upstream, String> {
        let prepared = Upstream::prepare(engine, &engine.config())?;
        Upstream::launch(engine, prepared).await
    }

    /// Builds the clients `config` asks for.
    pub fn prepare(engine: &Engine, config: &crate::config::Config) -> Result<Prepared, String> {
        let cfg = config.upstream.clone();
        let kiosk = &config.kiosk_id;
        let health = engine.upstream();
        let cb = match &cfg.central_base {
            Some(c) => Some(Arc::new(CentralBase::new(c, kiosk, health)?)),
            None => None,
        };
        let sinks = Sink::all(
            &cfg,
            kiosk,
            cb.as_ref().map(|c| (&c.http, &c.tokens)),
            health,
        )?;
        Ok(Prepared {
            cfg,
            kiosk: kiosk.clone(),
            cb,
            sinks,
        })
    }

    /// Registers the sinks with the store and starts the tasks.
    pub async fn launch(engine: &Engine, prepared: Prepared) -> Result<Upstream, String> {
        register(engine, &prepared).await?;
        Ok(spawn(engine, prepared))
    }

    /// Puts `prepared`'s tasks in place of the running ones (a reload). The
    /// new sinks are registered first: when that fails, the running tasks
    /// stay as they were, untouched, and the error says why.
    pub async fn replace(&mut self, engine: &Engine, prepared: Prepared) -> Result<(), String> {
        register(engine, &prepared).await?;
        // The old tasks end (what they had not delivered stays in the
        // outbox) before the new ones start.
        let old = std::mem::replace(self, Upstream::idle());
        old.stop().await;
        *self = spawn(engine, prepared);
        Ok(())
    }

    /// No tasks (a placeholder while a reload swaps them).
    pub fn idle() -> Upstream {
        Upstream {
            stop: CancellationToken::new(),
            tasks: JoinSet::new(),
        }
    }

    pub async fn stop(mut self) {
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Tells the store which sinks are active, and the store's size limit.
async fn register(engine: &Engine, prepared: &Prepared) -> Result<(), String> {
    let store = engine.store();
    let specs: Vec<_> = prepared.sinks.iter().map(Sink::spec).collect();
    let limit = prepared.cfg.store_limit_mb.saturating_mul(1024 * 1024);
    tokio::task::spawn_blocking(move || {
        store.configure_sinks(&specs)?;
        store.set_size_limit(limit);
        Ok::<_, crate::store::StoreError>(())
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("the outbox cannot register its sinks: {e}"))
}

/// Starts every task, each under its supervisor.
fn spawn(engine: &Engine, prepared: Prepared) -> Upstream {
    let Prepared {
        cfg,
        kiosk,
        cb,
        sinks,
    } = prepared;
    engine.set_central(cb.clone());
    let health = engine.upstream().clone();
    let stop = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let mut supervised = |name: String, link: &str, start: Start| {
        tasks.spawn(supervisor::supervise(
            name,
            link.to_string(),
            health.clone(),
            stop.clone(),
            start,
        ));
    };
    for sink in sinks {
        tracing::info!(sink = %sink.name, "delivering status changes upstream");
        let name = sink.name.clone();
        // The first run takes the sink built for the start; a restart
        // builds it again from the configuration (a relay consumes it).
        let first = Mutex::new(Some(sink));
        let (cfg, kiosk, cb, engine, stop) = (
            cfg.clone(),
            kiosk.clone(),
            cb.clone(),
            engine.clone(),
            stop.clone(),
        );
        let sink_name = name.clone();
        let start: Start = Box::new(move || {
            let sink = match first.lock().ok().and_then(|mut f| f.take()) {
                Some(s) => s,
                None => Sink::all(
                    &cfg,
                    &kiosk,
                    cb.as_ref().map(|c| (&c.http, &c.tokens)),
                    engine.upstream(),
                )?
                .into_iter()
                .find(|s| s.name == sink_name)
                .ok_or_else(|| format!("the sink {sink_name} is no longer configured"))?,
            };
            let limits = cfg.limits(sink.batch, sink.batched());
            Ok(super::relay::run(
                sink,
                engine.store(),
                limits,
                engine.metrics().clone(),
                stop.clone(),
            )
            .boxed())
        });
        supervised(format!("relay {name}"), &name, start);
    }
    if let Some(cb) = cb {
        let link = super::central::API_LINK;
        if cb.config().intake {
            tracing::info!("taking production requests from the central base");
            let (cb, engine, backoff, stop) =
                (cb.clone(), engine.clone(), cfg.backoff(), stop.clone());
            let start: Start = Box::new(move || {
                Ok(super::intake::run(cb.clone(), engine.clone(), backoff, stop.clone()).boxed())
            });
            supervised("intake".into(), link, start);
        }
        let (engine, stop2) = (engine.clone(), stop.clone());
        let start: Start =
            Box::new(move || Ok(heartbeat(cb.clone(), engine.clone(), stop2.clone()).boxed()));
        supervised("heartbeat".into(), link, start);
    }
    let (engine2, days, stop2) = (engine.clone(), cfg.retention_days, stop.clone());
    let start: Start = Box::new(move || Ok(upkeep(engine2.clone(), days, stop2.clone()).boxed()));
    supervised("upkeep".into(), UPKEEP, start);
    Upstream { stop, tasks }
}

/// The kiosk's health to the central base, at once and then every
/// `heartbeat_s`.
async fn heartbeat(cb: Arc<CentralBase>, engine: Engine, stop: CancellationToken) {
    let every = Duration::from_secs(cb.config().heartbeat_s);
    loop {
        let mut body = crate::engine::report::health(&engine).await;
        body["sentAt"] = crate::time::now_rfc3339().into();
        if super::bounds::bound(&mut body) {
            tracing::debug!("heartbeat cut to the central base's size bounds");
        }
        let before = std::time::SystemTime::now();
        let sent = tokio::select! {
            _ = stop.cancelled() => return,
            r = cb.heartbeat(&body) => r,
        };
        match &sent {
            Ok(Some(server_time)) => {
                if let Some(skew) = clock_skew_ms(before, std::time::SystemTime::now(), server_time)
                {
                    engine.upstream().clock_skew(super::central::API_LINK, skew);
                }
            }
            Ok(None) => {}
            Err(ref e) => tracing::debug!(error = %e, "heartbeat not delivered"),
        }
        // A central base that asks for more time (`Retry-After`) gets it:
        // the next heartbeat waits for the longer of the two.
        let next = match &sent {
            Err(e) => e
                .retry_after
                .map_or(every, |ra| every.max(ra.min(Duration::from_secs(86_400)))),
            Ok(_) => every,
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(next) => {}
        }
    }
}

/// This clock minus the server's, taking the server's time as read half way
/// through the call. `None` when the server's time does not parse.
fn clock_skew_ms(
    sent: std::time::SystemTime,
    answered: std::time::SystemTime,
    server_time: &str,
) -> Option<i64> {
    let server = humantime::parse_rfc3339_weak(server_time).ok()?;
    let half = answered.duration_since(sent).unwrap_or_default() / 2;
    let local = sent + half;
    Some(match local.duration_since(server) {
        Ok(ahead) => ahead.as_millis().min(i64::MAX as u128) as i64,
        Err(behind) => -(behind.duration().as_millis().min(i64::MAX as u128) as i64),
    })
}

/// Prunes delivered history past its retention; raises the size alarm at
/// 80 % of the limit.
async fn upkeep(engine: Engine, retention_days: u32, stop: CancellationToken) {
    let mut alarmed = false;
    loop {
        let store = engine.store();
        let before = crate::time::rfc3339(
            std::time::SystemTime::now() - Duration::from_secs(u64::from(retention_days) * 86_400),
        );
        let done = tokio::task::spawn_blocking(move || (store.prune(&before), store.usage())).await;
        if let Ok((pruned, usage)) = done {
            match pruned {
                Ok(n) if n > 0 => tracing::info!(events = n, "delivered history pruned"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "pruning delivered history failed"),
            }
            if let Ok((used, limit)) = usage {
                let high = limit > 0 && used.saturating_mul(10) >= limit.saturating_mul(8);
                if high && !alarmed {
                    tracing::error!(used_bytes = used, limit_bytes = limit, "the store is above 80 % of its limit: new requests are refused at the limit; check the upstream links (undelivered events are never pruned)");
                } else if !high && alarmed {
                    tracing::info!(
                        used_bytes = used,
                        limit_bytes = limit,
                        "the store is below 80 % of its limit again"
                    );
                }
                alarmed = high;
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(UPKEEP_EVERY) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn clock_skew_is_local_minus_server_at_the_calls_middle() {
        let t = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
        // Server says 1000 s; the call went from 1010 to 1012: middle 1011.
        let server = humantime::format_rfc3339(t(1000)).to_string();
        assert_eq!(clock_skew_ms(t(1010), t(1012), &server), Some(11_000));
        assert_eq!(clock_skew_ms(t(990), t(990), &server), Some(-10_000));
        assert_eq!(clock_skew_ms(t(990), t(990), "yesterday"), None);
    }
}
