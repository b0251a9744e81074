//! Opaque, time-ordered identifiers.
//!
//! Ids are UUIDv7 so that records sorted by id are also sorted by creation time, which keeps
//! append-mostly tables (audit, eval results, red-team attempts) cheap to index.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// A time-ordered unique identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Id(uuid::Uuid);

/// The text was not a UUID.
#[derive(Debug, thiserror::Error)]
#[error("invalid id {input:?}: expected a UUID such as 0190c6d2-6b1e-7c6a-8f00-0123456789ab")]
pub struct ParseIdError {
    input: String,
}

impl Id {
    /// A new id, ordered after every id made earlier on this machine's clock.
    pub fn new() -> Id {
        Id(uuid::Uuid::now_v7())
    }

    /// The id's 16 bytes, for storage.
    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }

    /// Rebuilds an id from the bytes [`Id::as_bytes`] returned.
    pub fn from_bytes(bytes: [u8; 16]) -> Id {
        Id(uuid::Uuid::from_bytes(bytes))
    }
}

impl Default for Id {
    fn default() -> Id {
        Id::new()
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl FromStr for Id {
    type Err = ParseIdError;

    fn from_str(s: &str) -> Result<Id, ParseIdError> {
        uuid::Uuid::parse_str(s).map(Id).map_err(|_| ParseIdError { input: s.to_owned() })
    }
}
