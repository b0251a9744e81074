//! UTC instants with an RFC 3339 text form.
//!
//! Every stored or logged time in finllm is UTC; local time is a presentation concern.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::{OffsetDateTime, UtcOffset, format_description::well_known::Rfc3339};

/// An instant in UTC, with nanosecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(OffsetDateTime);

/// The text or number was not a valid instant.
#[derive(Debug, thiserror::Error)]
pub enum TimestampError {
    /// Text that is not RFC 3339.
    #[error("invalid timestamp {input:?}: expected RFC 3339 such as 2023-11-06T09:30:00Z")]
    Parse {
        /// The text that failed to parse.
        input: String,
    },
    /// A Unix time outside the representable range.
    #[error("unix time {0} is out of range")]
    OutOfRange(i128),
}

impl Timestamp {
    /// The current time.
    pub fn now() -> Timestamp {
        Timestamp(OffsetDateTime::now_utc())
    }

    /// An instant from milliseconds since the Unix epoch.
    pub fn from_unix_millis(millis: i64) -> Result<Timestamp, TimestampError> {
        let nanos = i128::from(millis) * 1_000_000;
        OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .map(Timestamp)
            .map_err(|_| TimestampError::OutOfRange(i128::from(millis)))
    }

    /// Milliseconds since the Unix epoch (negative before 1970).
    pub fn unix_millis(&self) -> i64 {
        // Any `OffsetDateTime` lies within years ±9999, far inside i64 milliseconds.
        i64::try_from(self.0.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
    }

    /// Seconds since the Unix epoch, as OpenAI's `created` fields carry it.
    pub fn unix_seconds(&self) -> i64 {
        self.0.unix_timestamp()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // RFC 3339 formatting only fails for years outside 0..=9999 or non-UTC offsets with seconds.
        match self.0.format(&Rfc3339) {
            Ok(text) => f.write_str(&text),
            Err(_) => write!(f, "{}", self.0),
        }
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;

    fn from_str(s: &str) -> Result<Timestamp, TimestampError> {
        OffsetDateTime::parse(s, &Rfc3339)
            .map(|t| Timestamp(t.to_offset(UtcOffset::UTC)))
            .map_err(|_| TimestampError::Parse { input: s.to_owned() })
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Timestamp, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}
