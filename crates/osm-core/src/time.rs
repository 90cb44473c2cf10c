//! Time helpers. osm keeps instants as [`jiff::Timestamp`] and stores them as microseconds
//! since the Unix epoch; on the wire they are RFC 3339 in UTC with milliseconds and `Z`.

use jiff::Timestamp;

/// `2024-05-01T12:00:00.000Z`: the form the `oci` SDK parses on its fast path.
pub fn format_rfc3339(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Parses RFC 3339 with 0–9 fractional digits and `Z` or a numeric offset.
pub fn parse_rfc3339(s: &str) -> Result<Timestamp, String> {
    s.parse::<Timestamp>()
        .map_err(|_| format!("{s:?} is not an RFC 3339 date-time such as 2030-01-02T03:04:05Z"))
}

pub fn to_micros(t: Timestamp) -> i64 {
    t.as_microsecond()
}

pub fn from_micros(us: i64) -> Timestamp {
    Timestamp::from_microsecond(us).unwrap_or(Timestamp::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_milliseconds_and_z() {
        let t = parse_rfc3339("2030-01-02T03:04:05.123456Z").unwrap();
        assert_eq!(format_rfc3339(t), "2030-01-02T03:04:05.123Z");
        let t = parse_rfc3339("2030-01-02T04:04:05+01:00").unwrap();
        assert_eq!(format_rfc3339(t), "2030-01-02T03:04:05.000Z");
        assert!(parse_rfc3339("tomorrow").is_err());
        assert_eq!(from_micros(to_micros(t)), t);
    }
}
