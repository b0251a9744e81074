//! The tamper-evident audit trail: what was asked of which model, by whom, and how it went.
//!
//! Each record's hash covers the previous record's hash, so editing or deleting any record breaks every hash
//! after it, and `verify` names the first broken link. Records hold metadata only (model, key, tenant,
//! timings, token counts, verdicts), never prompt or answer text: customer data must not leak into logs.

use std::{
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use serde::{Deserialize, Serialize};

use crate::store::{AuditRow, GENESIS_HASH, Store, StoreError, chain_hash};

/// Response records written off the request path; shutdown waits for them so that none is lost.
#[derive(Debug, Default)]
pub struct PendingWrites {
    count: AtomicUsize,
    idle: tokio::sync::Notify,
}

impl PendingWrites {
    /// A write begins.
    pub fn begin(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
    }

    /// A write ended (written or failed).
    pub fn end(&self) {
        if self.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.idle.notify_waiters();
        }
    }

    /// Waits until no write is pending, at most `limit`; false when some are still pending then.
    pub async fn wait_idle(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.idle.notified();
            if self.count.load(Ordering::SeqCst) == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.count.load(Ordering::SeqCst) == 0;
            }
        }
    }
}

/// Whether a record opens or closes a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Written before the request reaches a model; failing to write it refuses the request (fail closed).
    Request,
    /// Written when the answer ends (or the client goes away).
    Response,
}

/// One audit record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Request or response.
    pub phase: Phase,
    /// Ties the two records of one request together.
    pub request_id: String,
    /// When the record was made (RFC 3339, UTC).
    pub at: String,
    /// The endpoint called.
    pub endpoint: String,
    /// The model asked for.
    pub model: String,
    /// The API key's public id, when keys are in use.
    pub key_id: Option<String>,
    /// The key's tenant.
    pub tenant: Option<String>,
    /// HTTP status of the answer.
    pub status: Option<u16>,
    /// Whether the answer streamed.
    pub stream: bool,
    /// Prompt tokens, when the backend reported usage.
    pub prompt_tokens: Option<u64>,
    /// Completion tokens, when the backend reported usage.
    pub completion_tokens: Option<u64>,
    /// Time to the first byte of the answer.
    pub first_byte_ms: Option<u64>,
    /// Time to the end of the answer.
    pub total_ms: Option<u64>,
    /// Whether the client disconnected before the answer ended.
    pub client_disconnected: bool,
    /// The input guard's verdict and action, `verdict/action`, when the guard judged the request.
    #[serde(default)]
    pub guard_input: Option<String>,
    /// The output guard's verdict and action for the answer.
    #[serde(default)]
    pub guard_output: Option<String>,
}

/// Appends a record to the chain.
pub async fn append(store: &Store, record: &AuditRecord) -> Result<AuditRow, StoreError> {
    let text = serde_json::to_string(record)
        .map_err(|err| StoreError::Corrupt { table: "audit_log", detail: err.to_string() })?;
    store.append_audit(text).await
}

/// The outcome of checking a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// Rows checked.
    pub rows: usize,
    /// The first problem found, if any.
    pub first_problem: Option<String>,
    /// The hash of the last row: publish it elsewhere to detect truncation of the tail.
    pub head: String,
}

/// Checks that rows are numbered 1.. without gaps, that each links to its predecessor and that each hash
/// matches its content.
pub fn verify(rows: &[AuditRow]) -> Verification {
    let mut prev = GENESIS_HASH.to_owned();
    for (i, row) in rows.iter().enumerate() {
        let expected_seq = i as i64 + 1;
        let problem = if row.seq != expected_seq {
            Some(format!("record {expected_seq} is missing (next present is {})", row.seq))
        } else if row.prev_hash != prev {
            Some(format!(
                "record {} does not link to record {}: the chain was cut or reordered",
                row.seq,
                row.seq - 1
            ))
        } else if chain_hash(&row.prev_hash, row.seq, &row.record) != row.hash {
            Some(format!("record {} was altered: its content does not match its hash", row.seq))
        } else {
            None
        };
        if problem.is_some() {
            return Verification { rows: rows.len(), first_problem: problem, head: prev };
        }
        prev.clone_from(&row.hash);
    }
    Verification { rows: rows.len(), first_problem: None, head: prev }
}
