//! API keys and per-key rate limits.
//!
//! A key is `fk-` plus 32 random bytes in hex, shown once at creation; only its SHA-256 is stored, so a
//! leaked database does not leak working keys (the secret has 256 bits of entropy, so a fast hash is safe).
//! Rate limits are token buckets per key and per replica, refilled continuously.

use std::{collections::HashMap, sync::Mutex, time::Instant};

use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::store::{KeyRecord, Store, StoreError, hex};

/// What `finllm keys create` asks for.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// A human name.
    pub name: String,
    /// The tenant the key acts for.
    pub tenant: String,
    /// Models the key may use; empty means all.
    pub models: Vec<String>,
    /// Requests per minute; `None` is unlimited.
    pub requests_per_minute: Option<u32>,
    /// Tokens per minute; `None` is unlimited.
    pub tokens_per_minute: Option<u32>,
}

/// The SHA-256 of a presented key, as stored.
pub fn hash_key(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// Creates a key and returns its record and the secret (the only time the secret exists in clear).
pub async fn create(store: &Store, new: NewKey) -> Result<(KeyRecord, String), StoreError> {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = format!("fk-{}", hex(&bytes));
    let record = KeyRecord {
        id: format!("key_{}", &hex(&Sha256::digest(secret.as_bytes()))[..12]),
        name: new.name,
        tenant: new.tenant,
        models: new.models,
        requests_per_minute: new.requests_per_minute,
        tokens_per_minute: new.tokens_per_minute,
        created_at: types::Timestamp::now().to_string(),
        revoked_at: None,
    };
    store.insert_key(record.clone(), hash_key(&secret)).await?;
    Ok((record, secret))
}

/// A continuously refilled bucket holding at most one minute's allowance.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled: Instant,
}

impl Bucket {
    fn refill(&mut self, per_minute: u32) {
        let now = Instant::now();
        let elapsed = now.duration_since(self.refilled).as_secs_f64();
        self.tokens =
            (self.tokens + elapsed * f64::from(per_minute) / 60.0).min(f64::from(per_minute));
        self.refilled = now;
    }
}

/// Per-key request and token buckets.
#[derive(Debug, Default)]
pub struct RateLimiter {
    requests: Mutex<HashMap<String, Bucket>>,
    tokens: Mutex<HashMap<String, Bucket>>,
}

/// Which limit was hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Requests per minute.
    Requests(u32),
    /// Tokens per minute.
    Tokens(u32),
}

impl RateLimiter {
    /// Takes one request from the key's allowance, or says which limit is exhausted.
    pub fn admit(&self, key: &KeyRecord) -> Result<(), Limit> {
        // Token use is only known afterwards; refuse once the allowance is spent.
        let tokens_left =
            with_bucket(&self.tokens, key, key.tokens_per_minute, |bucket| bucket.tokens > 0.0);
        if let (Some(false), Some(per_minute)) = (tokens_left, key.tokens_per_minute) {
            return Err(Limit::Tokens(per_minute));
        }
        let admitted = with_bucket(&self.requests, key, key.requests_per_minute, |bucket| {
            let ok = bucket.tokens >= 1.0;
            if ok {
                bucket.tokens -= 1.0;
            }
            ok
        });
        if let (Some(false), Some(per_minute)) = (admitted, key.requests_per_minute) {
            return Err(Limit::Requests(per_minute));
        }
        Ok(())
    }

    /// Charges tokens used by a finished request.
    pub fn charge_tokens(&self, key: &KeyRecord, used: u64) {
        with_bucket(&self.tokens, key, key.tokens_per_minute, |bucket| {
            bucket.tokens -= used as f64;
        });
    }
}

/// Runs `f` on the key's refilled bucket when the key has this limit; `None` when it has none.
fn with_bucket<T>(
    buckets: &Mutex<HashMap<String, Bucket>>,
    key: &KeyRecord,
    per_minute: Option<u32>,
    f: impl FnOnce(&mut Bucket) -> T,
) -> Option<T> {
    let per_minute = per_minute?;
    let mut buckets = buckets.lock().ok()?;
    let bucket = buckets
        .entry(key.id.clone())
        .or_insert_with(|| Bucket { tokens: f64::from(per_minute), refilled: Instant::now() });
    bucket.refill(per_minute);
    Some(f(bucket))
}
