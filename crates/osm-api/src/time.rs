//! Serde helpers: instants as RFC 3339 UTC with milliseconds (`2024-05-01T12:00:00.000Z`), the
//! form the `oci` SDK parses on its fast path; input accepts 0–9 fractional digits and offsets.

use jiff::Timestamp;
use serde::{Deserialize, Deserializer, Serializer};

pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&osm_core::time::format_rfc3339(*t))
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
    let text = String::deserialize(d)?;
    osm_core::time::parse_rfc3339(&text).map_err(serde::de::Error::custom)
}

pub mod option {
    use super::*;

    pub fn serialize<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(text) => osm_core::time::parse_rfc3339(&text)
                .map(Some)
                .map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

/// The string-typed time fields of the API (`lastCheckin`, `lastBoot`, …) in the same form.
pub fn text(t: Option<Timestamp>) -> Option<String> {
    t.map(osm_core::time::format_rfc3339)
}
