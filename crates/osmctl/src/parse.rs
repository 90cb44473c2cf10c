//! What operators type, checked before anything is sent: recurrences (`--every 1d`), times
//! (`--at +30m`, an RFC 3339 instant or a local time in the job's zone), OCIDs and tags.
//! Pure functions; the current time is passed in.

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, SpanRelativeTo, Timestamp};
use osm_core::IntervalType;
use osm_core::ids::{check_ocid, type_segment};

/// A recurrence as the API carries it: `intervalType` and `intervalValue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Every {
    pub interval_type: IntervalType,
    pub value: u32,
}

/// `6h`, `1d`, `2w`, `1mo` (also `12 hours`, `3 days`, `1 month`).
pub fn every(text: &str) -> Result<Every, String> {
    let s = text.trim().to_ascii_lowercase();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = (&s[..split], s[split..].trim());
    if digits.is_empty() || unit.is_empty() {
        return Err(format!(
            "{text:?} is not an interval: give a number and a unit, such as 6h, 1d, 2w or 1mo"
        ));
    }
    let interval_type = match unit {
        "h" | "hour" | "hours" => IntervalType::Hour,
        "d" | "day" | "days" => IntervalType::Day,
        "w" | "week" | "weeks" => IntervalType::Week,
        "mo" | "month" | "months" => IntervalType::Month,
        "s" | "sec" | "secs" | "m" | "min" | "mins" | "minute" | "minutes" => {
            return Err(format!(
                "{text:?}: jobs repeat every whole number of hours, days, weeks or months \
                 (h, d, w, mo); months are mo"
            ));
        }
        other => {
            return Err(format!(
                "{text:?}: unknown unit {other:?}; use h (hours), d (days), w (weeks) or mo (months)"
            ));
        }
    };
    let value = osm_core::validate::parse_interval_value(digits).map_err(|_| {
        format!(
            "{text:?}: the number of {} must be from 1 to {}",
            match interval_type {
                IntervalType::Hour => "hours",
                IntervalType::Day => "days",
                IntervalType::Week => "weeks",
                IntervalType::Month => "months",
            },
            osm_core::validate::MAX_INTERVAL_VALUE
        )
    })?;
    Ok(Every {
        interval_type,
        value,
    })
}

/// The zone a local time is read in: an IANA name, or UTC.
pub fn time_zone(name: Option<&str>) -> Result<TimeZone, String> {
    match name {
        None => Ok(TimeZone::UTC),
        Some(n) => {
            osm_core::validate::check_time_zone(n)?;
            TimeZone::get(n).map_err(|e| format!("time zone {n:?}: {e}"))
        }
    }
}

/// `--at`: `+30m`/`+2h`/`+1d`/`+1w`/`+1h30m` from `now`, an RFC 3339 instant with an offset, or a
/// local date and time (`2030-01-02T03:04`, `2030-01-02 03:04:05`) in `zone`. A local time in a
/// spring gap resolves to the instant after the gap, an ambiguous one to the earlier instant
/// (the rules the scheduler applies to recurrences). Times more than a minute past are refused.
pub fn at(text: &str, now: Timestamp, zone: &TimeZone) -> Result<Timestamp, String> {
    let s = text.trim();
    let when = if let Some(offset) = s.strip_prefix('+') {
        let span: Span = offset.trim().parse().map_err(|_| {
            format!("{text:?} is not an offset from now such as +30m, +2h, +1d or +1h30m")
        })?;
        let duration = span
            .to_duration(SpanRelativeTo::days_are_24_hours())
            .map_err(|_| {
                format!("{text:?}: offsets from now go up to weeks; give a date for later times")
            })?;
        now.checked_add(duration)
            .map_err(|_| format!("{text:?} is too far in the future"))?
    } else if let Ok(t) = s.parse::<Timestamp>() {
        t
    } else if let Ok(local) = s.replacen(' ', "T", 1).parse::<DateTime>() {
        zone.to_ambiguous_timestamp(local)
            .compatible()
            .map_err(|e| format!("{text:?}: {e}"))?
    } else {
        return Err(format!(
            "{text:?} is not a time: give an RFC 3339 time (2030-01-02T03:04:05Z), a local time \
             (2030-01-02T03:04, read in --time-zone or UTC) or an offset from now (+30m, +2h, +1d)"
        ));
    };
    if when < now - osm_core::validate::PAST_GRACE {
        return Err(format!(
            "{text:?} is in the past ({}); give a later time",
            osm_core::time::format_rfc3339(when)
        ));
    }
    Ok(when)
}

/// A point in time, past or future (`--issued-after`): an RFC 3339 instant, a date and time in
/// UTC (`2024-01-02T03:04`, `2024-01-02 03:04:05`) or a date (`2024-01-02`, its midnight UTC).
pub fn instant(text: &str) -> Result<Timestamp, String> {
    let s = text.trim();
    if let Ok(t) = s.parse::<Timestamp>() {
        return Ok(t);
    }
    let local = s.replacen(' ', "T", 1).parse::<DateTime>().or_else(|_| {
        s.parse::<jiff::civil::Date>()
            .map(|d| d.to_datetime(jiff::civil::Time::midnight()))
    });
    local
        .ok()
        .and_then(|dt| TimeZone::UTC.to_ambiguous_timestamp(dt).compatible().ok())
        .ok_or_else(|| {
            format!(
                "{text:?} is not a time: give an RFC 3339 time (2024-01-02T03:04:05Z), a UTC date \
                 and time (2024-01-02T03:04) or a date (2024-01-02)"
            )
        })
}

/// A plain duration for waiting (`--timeout 10m`, `--interval 2s`).
pub fn duration(text: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("{text:?} is not a duration such as 500ms, 2s, 10m or 1h");
    let span: Span = text.trim().parse().map_err(|_| bad())?;
    let d: SignedDuration = span
        .to_duration(SpanRelativeTo::days_are_24_hours())
        .map_err(|_| bad())?;
    std::time::Duration::try_from(d).map_err(|_| bad())
}

fn ocid_of(value: &str, kinds: &[&str], what: &str) -> Result<String, String> {
    let value = value.trim();
    check_ocid("id", value).map_err(|_| {
        format!("{value:?} is not an OCID (ocid1.<type>.<realm>..<unique>) of a {what}")
    })?;
    match type_segment(value) {
        Some(kind) if kinds.contains(&kind) => Ok(value.to_string()),
        _ => Err(format!(
            "{value:?} is not the OCID of a {what} (expected ocid1.{}.…)",
            kinds[0]
        )),
    }
}

pub fn compartment_id(v: &str) -> Result<String, String> {
    ocid_of(v, &["compartment", "tenancy"], "compartment or tenancy")
}

pub fn instance_id(v: &str) -> Result<String, String> {
    ocid_of(v, &["instance"], "managed instance")
}

pub fn group_id(v: &str) -> Result<String, String> {
    ocid_of(v, &["osmsmanagedinstancegroup"], "managed instance group")
}

pub fn job_id(v: &str) -> Result<String, String> {
    ocid_of(v, &["osmsscheduledjob"], "scheduled job")
}

pub fn work_request_id(v: &str) -> Result<String, String> {
    ocid_of(v, &["osmsworkrequest"], "work request")
}

pub fn erratum_id(v: &str) -> Result<String, String> {
    ocid_of(v, &["osmserratum"], "erratum")
}

pub fn install_key_id(v: &str) -> Result<String, String> {
    ocid_of(v, &["osmsinstallkey"], "install key")
}

/// `--tag key=value`.
pub fn tag(v: &str) -> Result<(String, String), String> {
    match v.split_once('=') {
        Some((k, val)) if !k.trim().is_empty() => Ok((k.trim().to_string(), val.to_string())),
        _ => Err(format!("{v:?} is not a tag: write key=value")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn instants_may_be_in_the_past() {
        let t = |s: &str| instant(s).map(osm_core::time::format_rfc3339);
        assert_eq!(
            t("2024-01-02T03:04:05Z").unwrap(),
            "2024-01-02T03:04:05.000Z"
        );
        assert_eq!(
            t("2024-01-02T03:04:05+02:00").unwrap(),
            "2024-01-02T01:04:05.000Z"
        );
        assert_eq!(t("2024-01-02 03:04").unwrap(), "2024-01-02T03:04:00.000Z");
        assert_eq!(t("2024-01-02").unwrap(), "2024-01-02T00:00:00.000Z");
        assert!(t("soon").unwrap_err().contains("is not a time"));
        assert!(t("2024-13-01").is_err());
    }

    #[test]
    fn every_reads_each_unit_and_refuses_impossible_intervals() {
        let e = |s| every(s).map(|e| (e.interval_type, e.value));
        assert_eq!(e("6h"), Ok((IntervalType::Hour, 6)));
        assert_eq!(e("1d"), Ok((IntervalType::Day, 1)));
        assert_eq!(e("2w"), Ok((IntervalType::Week, 2)));
        assert_eq!(e("1mo"), Ok((IntervalType::Month, 1)));
        assert_eq!(e(" 3 Days "), Ok((IntervalType::Day, 3)));
        assert_eq!(e("12 hours"), Ok((IntervalType::Hour, 12)));
        assert_eq!(e("10000h"), Ok((IntervalType::Hour, 10_000)));
        for (bad, says) in [
            ("0d", "from 1 to"),
            ("10001d", "from 1 to"),
            ("1x", "unknown unit \"x\""),
            ("30m", "months are mo"),
            ("90s", "whole number"),
            ("d", "give a number and a unit"),
            ("5", "give a number and a unit"),
            ("", "give a number and a unit"),
            ("-1d", "give a number and a unit"),
            ("1.5d", "unknown unit"),
            ("99999999999999999999d", "from 1 to"),
        ] {
            let err = every(bad).unwrap_err();
            assert!(err.contains(says), "{bad:?}: {err}");
        }
    }

    #[test]
    fn at_reads_offsets_instants_and_local_times() {
        let now = t("2030-03-10T12:00:00Z");
        let utc = TimeZone::UTC;
        assert_eq!(at("+30m", now, &utc), Ok(t("2030-03-10T12:30:00Z")));
        assert_eq!(at("+2h", now, &utc), Ok(t("2030-03-10T14:00:00Z")));
        assert_eq!(at("+1d", now, &utc), Ok(t("2030-03-11T12:00:00Z")));
        assert_eq!(at("+1w", now, &utc), Ok(t("2030-03-17T12:00:00Z")));
        assert_eq!(at("+1h30m", now, &utc), Ok(t("2030-03-10T13:30:00Z")));
        assert_eq!(
            at("2030-04-01T08:00:00+02:00", now, &utc),
            Ok(t("2030-04-01T06:00:00Z"))
        );
        assert_eq!(
            at("2030-04-01T08:00", now, &utc),
            Ok(t("2030-04-01T08:00:00Z"))
        );
        let paris = time_zone(Some("Europe/Paris")).unwrap();
        assert_eq!(
            at("2030-07-01 08:00", now, &paris),
            Ok(t("2030-07-01T06:00:00Z"))
        );
        // 02:30 does not exist in Paris on 2030-03-31: the instant after the gap.
        assert_eq!(
            at("2030-03-31T02:30", now, &paris),
            Ok(t("2030-03-31T01:30:00Z"))
        );
        // 02:30 happens twice on 2030-10-27: the earlier one.
        assert_eq!(
            at("2030-10-27T02:30", now, &paris),
            Ok(t("2030-10-27T00:30:00Z"))
        );
    }

    #[test]
    fn at_refuses_malformed_and_past_times() {
        let now = t("2030-03-10T12:00:00Z");
        let utc = TimeZone::UTC;
        for (bad, says) in [
            ("yesterday", "is not a time"),
            ("2030-13-01T00:00:00Z", "is not a time"),
            ("2030-02-30T00:00", "is not a time"),
            ("+soon", "not an offset"),
            ("+", "not an offset"),
            ("+1mo", "up to weeks"),
            ("2020-01-01T00:00:00Z", "in the past"),
            ("+-2h", "in the past"),
        ] {
            let err = at(bad, now, &utc).unwrap_err();
            assert!(err.contains(says), "{bad:?}: {err}");
        }
        // A few seconds back is within the grace the server allows too.
        assert!(at("2030-03-10T11:59:30Z", now, &utc).is_ok());
    }

    #[test]
    fn time_zones_must_be_iana_names() {
        assert!(time_zone(Some("America/New_York")).is_ok());
        assert!(time_zone(None).is_ok());
        let err = time_zone(Some("Mars/Olympus")).unwrap_err();
        assert!(err.contains("IANA"), "{err}");
    }

    #[test]
    fn durations() {
        assert_eq!(duration("2s"), Ok(std::time::Duration::from_secs(2)));
        assert_eq!(duration("500ms"), Ok(std::time::Duration::from_millis(500)));
        assert_eq!(duration("10m"), Ok(std::time::Duration::from_secs(600)));
        assert!(duration("-2s").is_err());
        assert!(duration("soon").is_err());
    }

    #[test]
    fn ocids_are_checked_for_syntax_and_kind() {
        let group = "ocid1.osmsmanagedinstancegroup.oc1..aaaaaaaabc";
        assert_eq!(group_id(group).as_deref(), Ok(group));
        assert!(compartment_id("ocid1.tenancy.oc1..aaaa").is_ok());
        assert!(compartment_id("ocid1.compartment.oc1..aaaa").is_ok());
        let err = group_id("ocid1.instance.oc1..aaaa").unwrap_err();
        assert!(err.contains("managed instance group"), "{err}");
        for bad in [
            "",
            "web",
            "ocid1.instance",
            "ocid2.instance.oc1..a",
            "ocid1.instance.oc1..A!",
        ] {
            let err = instance_id(bad).unwrap_err();
            assert!(err.contains("is not an OCID"), "{bad:?}: {err}");
        }
        assert!(job_id("ocid1.osmsscheduledjob.oc1..x").is_ok());
        assert!(work_request_id("ocid1.osmsworkrequest.oc1..x").is_ok());
        assert!(install_key_id("ocid1.osmsinstallkey.oc1..x").is_ok());
    }

    #[test]
    fn tags() {
        assert_eq!(tag("env=prod"), Ok(("env".into(), "prod".into())));
        assert_eq!(tag("note=a=b"), Ok(("note".into(), "a=b".into())));
        assert!(tag("=x").is_err());
        assert!(tag("novalue").is_err());
    }
}
