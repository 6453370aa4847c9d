//! Webhook delivery: one JSON POST per transition and webhook, retried with
//! exponential backoff (100 ms doubling, at most 6 attempts) until a 2xx.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, header};
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::Notification;
use crate::tls::{self, TlsError};

/// Attempts per notification and webhook.
const ATTEMPTS: u32 = 6;
/// The first retry's wait; doubled each time.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Time one attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// Posts notifications to the configured webhooks.
#[derive(Debug, Clone)]
pub struct Notifier {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    webhooks: Vec<String>,
}

impl Notifier {
    /// A notifier for `webhooks` (`http://` or `https://` URLs; the latter
    /// trust the system's roots and `ca_file`).
    pub fn new(webhooks: &[String], ca_file: Option<&Path>) -> Result<Notifier, TlsError> {
        Ok(Notifier {
            client: Client::builder(TokioExecutor::new()).build(tls::https_connector(ca_file)?),
            webhooks: webhooks.to_vec(),
        })
    }

    /// Sends each notification to each webhook, in the background.
    pub fn send(&self, notifications: Vec<Notification>) {
        for notification in notifications {
            let Ok(body) = serde_json::to_vec(&notification) else {
                continue;
            };
            let body = Bytes::from(body);
            for url in &self.webhooks {
                let (client, url, body) = (self.client.clone(), url.clone(), body.clone());
                let alert = notification.alert.rule.clone();
                tokio::spawn(async move {
                    if let Err(err) = deliver(&client, &url, body).await {
                        tracing::warn!(%url, %alert, %err, "alert notification not delivered");
                    }
                });
            }
        }
    }
}

async fn deliver(
    client: &Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    url: &str,
    body: Bytes,
) -> Result<(), String> {
    let mut backoff = FIRST_BACKOFF;
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        let request = Request::post(url)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(body.clone()))
            .map_err(|e| format!("invalid webhook URL: {e}"))?;
        match tokio::time::timeout(ATTEMPT_TIMEOUT, client.request(request)).await {
            Ok(Ok(response)) if response.status().is_success() => return Ok(()),
            Ok(Ok(response)) => last = format!("status {}", response.status()),
            Ok(Err(err)) => last = err.to_string(),
            Err(_) => last = "timed out".into(),
        }
        if attempt < ATTEMPTS {
            tracing::debug!(%url, attempt, error = %last, "alert webhook failed; retrying");
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
    }
    Err(format!("{ATTEMPTS} attempts failed, the last with {last}"))
}
