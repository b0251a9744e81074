//! The one HTTP client every remote party of a campaign goes through (targets, the LLM judge, the
//! attacker model): a per-endpoint rate limit (requests per second and requests in flight), a timeout,
//! and retries with exponential backoff on 429, 5xx and connection errors, so a campaign of hundreds of
//! thousands of attacks neither floods a deployment nor dies on its first hiccup.

use std::{sync::Mutex, time::Duration};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::{sync::Semaphore, time::Instant};

use crate::RedteamError;

/// How hard and how patiently an endpoint is driven.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pacing {
    /// Requests per second (0 = unlimited).
    #[serde(default)]
    pub rate: f64,
    /// Requests in flight at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Seconds one request may take.
    #[serde(default = "default_timeout")]
    pub timeout_secs: f64,
    /// Extra tries after a 429, a 5xx, a timeout or a connection error.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// First backoff in milliseconds; doubled on every retry (capped at 30 s).
    #[serde(default = "default_backoff")]
    pub backoff_ms: u64,
}

fn default_concurrency() -> usize {
    8
}
fn default_timeout() -> f64 {
    60.0
}
fn default_retries() -> u32 {
    4
}
fn default_backoff() -> u64 {
    250
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing {
            rate: 0.0,
            concurrency: default_concurrency(),
            timeout_secs: default_timeout(),
            retries: default_retries(),
            backoff_ms: default_backoff(),
        }
    }
}

/// Spacing between request starts (a leaky bucket of size one) plus a cap on requests in flight.
#[derive(Debug)]
struct Limiter {
    in_flight: Semaphore,
    interval: Option<Duration>,
    next_start: Mutex<Instant>,
}

impl Limiter {
    fn new(pacing: &Pacing) -> Limiter {
        Limiter {
            in_flight: Semaphore::new(pacing.concurrency.max(1)),
            interval: (pacing.rate > 0.0 && pacing.rate.is_finite())
                .then(|| Duration::from_secs_f64(1.0 / pacing.rate)),
            next_start: Mutex::new(Instant::now()),
        }
    }

    /// Reserves the next start slot and sleeps until it; the lock is never held across the sleep.
    async fn pace(&self) {
        let Some(interval) = self.interval else { return };
        let slot = match self.next_start.lock() {
            Ok(mut next) => {
                let slot = (*next).max(Instant::now());
                *next = slot + interval;
                slot
            }
            // A poisoned lock only means another task panicked mid-update: skip pacing once.
            Err(_) => return,
        };
        tokio::time::sleep_until(slot).await;
    }
}

/// A remote endpoint with its pacing; `post_json` is the only way requests leave.
#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    limiter: Limiter,
    pacing: Pacing,
}

/// What came back from a successful request.
#[derive(Debug, Clone)]
pub struct Response {
    /// The parsed body (`Value::String` when the body is not JSON).
    pub body: Value,
    /// Tries it took (1 = first time).
    pub tries: u32,
}

impl Client {
    /// A client paced by `pacing`.
    pub fn new(pacing: Pacing) -> Result<Client, RedteamError> {
        let timeout = Duration::from_secs_f64(pacing.timeout_secs.clamp(0.001, 86_400.0));
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| RedteamError::Endpoint(format!("HTTP client: {e}")))?;
        Ok(Client { limiter: Limiter::new(&pacing), http, pacing })
    }

    /// The pacing in force.
    pub fn pacing(&self) -> &Pacing {
        &self.pacing
    }

    /// Sends `body` to `url` with `method` and `headers`, retrying what is worth retrying. A 4xx other
    /// than 429 fails at once: asking again would get the same answer.
    pub async fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: Option<&Value>,
    ) -> Result<Response, RedteamError> {
        let method = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            .map_err(|_| RedteamError::Endpoint(format!("{url}: bad HTTP method `{method}`")))?;
        let _permit = self
            .limiter
            .in_flight
            .acquire()
            .await
            .map_err(|e| RedteamError::Endpoint(e.to_string()))?;
        let mut tries = 0u32;
        loop {
            self.limiter.pace().await;
            tries += 1;
            let mut request = self.http.request(method.clone(), url);
            for (name, value) in headers {
                request = request.header(name, value);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let (failure, retry_after, timed_out) = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let retry_after = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<f64>().ok())
                        .filter(|s| s.is_finite() && *s >= 0.0)
                        .map(|s| Duration::from_secs_f64(s.min(60.0)));
                    match response.text().await {
                        Ok(text) if status.is_success() => {
                            let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
                            return Ok(Response { body, tries });
                        }
                        Ok(text) => {
                            let message = format!(
                                "{url}: HTTP {status}: {}",
                                text.chars().take(300).collect::<String>()
                            );
                            if status.as_u16() != 429 && !status.is_server_error() {
                                return Err(RedteamError::Endpoint(message));
                            }
                            (message, retry_after, false)
                        }
                        Err(e) => (format!("{url}: reading the body: {e}"), None, e.is_timeout()),
                    }
                }
                Err(e) => (format!("{url}: {e}"), None, e.is_timeout()),
            };
            if tries > self.pacing.retries {
                let message = format!("{failure} (after {tries} tries)");
                return Err(if timed_out {
                    RedteamError::Timeout(message)
                } else {
                    RedteamError::Endpoint(message)
                });
            }
            let backoff = Duration::from_millis(
                self.pacing.backoff_ms.saturating_mul(1 << (tries - 1).min(16)).min(30_000),
            );
            tokio::time::sleep(retry_after.map_or(backoff, |r| r.max(backoff))).await;
        }
    }
}

/// `base` with `/v1` appended unless it already ends with it, without a trailing slash.
pub fn v1_base(base: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.ends_with("/v1") { base.to_owned() } else { format!("{base}/v1") }
}
