//! Conversions between rows and domain values shared by both backends.

use jiff::Timestamp;
use osm_core::time::{from_micros, to_micros};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::StoreError;

pub fn micros(t: Timestamp) -> i64 {
    to_micros(t)
}

pub fn opt_micros(t: Option<Timestamp>) -> Option<i64> {
    t.map(to_micros)
}

pub fn ts(us: i64) -> Timestamp {
    from_micros(us)
}

pub fn opt_ts(us: Option<i64>) -> Option<Timestamp> {
    us.map(from_micros)
}

pub fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("serialisable")
}

pub fn from_json<T: DeserializeOwned>(column: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

pub fn parse_enum<T: std::str::FromStr>(column: &str, text: &str) -> Result<T, StoreError> {
    text.parse()
        .map_err(|_| StoreError::Corrupt(format!("{column}: unexpected value {text:?}")))
}

pub fn parse_opt_enum<T: std::str::FromStr>(
    column: &str,
    text: Option<String>,
) -> Result<Option<T>, StoreError> {
    text.map(|t| parse_enum(column, &t)).transpose()
}

/// A time-ordered unique id for log and error entries (ties in time keep insertion order).
pub fn entry_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// What a completion needs of a work request: id, instance, status, operation type, time
/// started (µs), parent, and where its locked row lies ([`RowLocator`]).
pub type CompletionState = (
    String,
    Option<String>,
    String,
    String,
    Option<i64>,
    Option<String>,
    RowLocator,
);

/// Where a row this transaction holds locked lies, for a backend that can then change it
/// without looking its key up again: PostgreSQL's `ctid` (as text), which stays put while the
/// row is locked. None where a backend has no use for it (SQLite).
pub type RowLocator = Option<String>;

/// What a claim returns of a work request it started (only what the agent needs: it crosses
/// the wire on every claim): id, instance, parent, description, action (JSON), time accepted
/// (µs).
pub type StartedWork = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
);

/// A work request whose lease ran out: id, instance name, the lease's deadline (µs), parent.
pub type ExpiredLease = (String, Option<String>, i64, Option<String>);

/// A work request a completion finishes: id, new status, the report's lines as a JSON array
/// when they are kept in the row (`outcome_lines`, migration 0012), and where its row lies.
pub type FinishedRow<'a> = (&'a str, &'static str, Option<String>, RowLocator);

/// The largest report (its lines as JSON) kept in the work request's row; longer ones are
/// log rows, so listings never carry long outputs and the row stays small enough to update in
/// place.
pub const OUTCOME_LINES_INLINE: usize = 512;

/// One value of a row [`insert_rows`](crate::common) writes; the variant says the column's type.
#[derive(Debug, Clone)]
pub enum Cell {
    Text(Option<String>),
    Int(Option<i64>),
    Float(f64),
}

impl Cell {
    pub fn text(value: impl Into<String>) -> Cell {
        Cell::Text(Some(value.into()))
    }
}
