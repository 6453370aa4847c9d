//! The Redis every node shares (fred): one multiplexed client for commands
//! and one subscriber for the cache's invalidation channel. Both reconnect
//! by themselves; while Redis is away, [`Redis::is_up`] is false and callers
//! degrade (the cache to its in-process tier, locks to `unavailable`)
//! instead of waiting on a dead connection.

use std::time::Duration;

use fred::clients::SubscriberClient;
use fred::prelude::{
    Builder, Client, ClientLike, Config as FredConfig, Error as FredError, ReconnectPolicy,
};

use crate::config::RedisConfig;

/// How long startup waits for a first connection before going on degraded.
const FIRST_CONNECT: Duration = Duration::from_secs(2);

/// Connected clients and the key prefix.
#[derive(Clone)]
pub struct Redis {
    /// Commands.
    pub client: Client,
    /// The invalidation channel.
    pub subscriber: SubscriberClient,
    /// `<namespace>:`, the prefix of every key and channel.
    pub prefix: String,
    /// Whether readiness needs it (`redis.required`).
    pub required: bool,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("prefix", &self.prefix)
            .field("up", &self.is_up())
            .finish_non_exhaustive()
    }
}

impl Redis {
    /// Builds the clients and starts connecting. A Redis that does not
    /// answer within two seconds is not an error: the node starts degraded
    /// and connects when Redis comes.
    pub async fn connect(config: &RedisConfig) -> Result<Redis, String> {
        let mut fred_config =
            FredConfig::from_url(&config.url).map_err(|e| format!("redis.url: {e}"))?;
        if fred_config.uses_tls() {
            let tls = crate::tls::client_config(config.ca_file.as_deref())
                .map_err(|e| format!("redis.ca_file: {e}"))?;
            fred_config.tls = Some(fred::types::config::TlsConnector::from(tls).into());
        }
        // Keep retrying the first connection too; startup does not wait on it.
        fred_config.fail_fast = false;
        let timeout = config.command_timeout;
        let builder = || {
            let mut builder = Builder::from_config(fred_config.clone());
            builder
                .with_performance_config(|perf| perf.default_command_timeout = timeout)
                .with_connection_config(|conn| {
                    conn.connection_timeout = timeout.max(Duration::from_millis(500));
                    conn.internal_command_timeout = timeout.max(Duration::from_millis(500));
                    conn.max_command_attempts = 1;
                })
                .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2));
            builder
        };
        let client = builder().build().map_err(|e| e.to_string())?;
        let subscriber = builder()
            .build_subscriber_client()
            .map_err(|e| e.to_string())?;
        client.connect();
        subscriber.connect();
        // Resubscribe after every reconnection (a task of its own; its
        // handle is not needed).
        drop(subscriber.manage_subscriptions());
        let redis = Redis {
            client,
            subscriber,
            prefix: format!("{}:", config.namespace),
            required: config.required,
        };
        let first = async {
            redis.client.wait_for_connect().await?;
            redis.subscriber.wait_for_connect().await
        };
        match tokio::time::timeout(FIRST_CONNECT, first).await {
            Ok(Ok(())) => tracing::info!(url = %redact(&config.url), "connected to Redis"),
            Ok(Err(err)) => warn_down(&config.url, &err.to_string()),
            Err(_) => warn_down(&config.url, "no answer within 2s"),
        }
        Ok(redis)
    }

    /// Whether both connections are up now.
    pub fn is_up(&self) -> bool {
        self.client.is_connected() && self.subscriber.is_connected()
    }

    /// The command client while it is connected; `None` while Redis is
    /// away, so a caller fails at once instead of waiting on it.
    pub fn connected(&self) -> Option<&Client> {
        self.client.is_connected().then_some(&self.client)
    }

    /// A round trip, for health checks.
    pub async fn ping(&self) -> Result<Duration, FredError> {
        let started = std::time::Instant::now();
        let _: String = self.client.ping(None).await?;
        Ok(started.elapsed())
    }

    /// Closes both connections.
    pub async fn quit(&self) {
        let _ = self.subscriber.quit().await;
        let _ = self.client.quit().await;
    }
}

fn warn_down(url: &str, why: &str) {
    tracing::warn!(
        url = %redact(url),
        why,
        "Redis does not answer: the cache serves from process memory and locks are unavailable \
         until it does; reconnecting in the background"
    );
}

/// The URL without its password, for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_stay_out_of_logs() {
        assert_eq!(
            super::redact("redis://user:secret@127.0.0.1:6379/0"),
            "redis://***@127.0.0.1:6379/0"
        );
        assert_eq!(
            super::redact("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
    }
}
