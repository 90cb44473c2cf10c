use jiff::civil::{Date, date};
use proptest::prelude::*;

use super::*;

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn local(r: &Recurrence, t: Timestamp) -> DateTime {
    t.to_zoned_datetime(r.time_zone.clone()).datetime()
}

#[test]
fn spring_gap_runs_at_the_end_of_the_gap() {
    // Paris skips 02:00–03:00 on 2026-03-29. A daily job at 02:30 local runs at 03:00 that day.
    let r = Recurrence::new(
        at("2026-03-27T01:30:00Z"),
        IntervalType::Day,
        1,
        Some("Europe/Paris"),
    )
    .unwrap();
    assert_eq!(
        local(&r, r.occurrence(0)).to_string(),
        "2026-03-27T02:30:00"
    );
    assert_eq!(
        r.occurrence(2),
        at("2026-03-29T01:00:00Z"),
        "03:00 CEST, the first valid instant"
    );
    assert_eq!(
        local(&r, r.occurrence(3)).to_string(),
        "2026-03-30T02:30:00",
        "back to 02:30 afterwards"
    );
}

#[test]
fn autumn_fold_runs_once_at_the_first_instant() {
    // Paris repeats 02:00–03:00 on 2026-10-25. A daily job at 02:30 runs once, at 02:30 CEST.
    let r = Recurrence::new(
        at("2026-10-24T00:30:00Z"),
        IntervalType::Day,
        1,
        Some("Europe/Paris"),
    )
    .unwrap();
    assert_eq!(r.occurrence(1), at("2026-10-25T00:30:00Z"));
    let runs = r.between(at("2026-10-24T12:00:00Z"), at("2026-10-25T12:00:00Z"));
    assert_eq!(runs, vec![at("2026-10-25T00:30:00Z")]);
}

#[test]
fn hourly_jobs_count_real_hours_across_dst() {
    let r = Recurrence::new(
        at("2026-03-29T00:00:00Z"),
        IntervalType::Hour,
        1,
        Some("Europe/Paris"),
    )
    .unwrap();
    for k in 0..5 {
        assert_eq!(
            r.occurrence(k + 1) - r.occurrence(k),
            SignedDuration::from_hours(1)
        );
    }
}

#[test]
fn month_end_clamps_and_returns() {
    let r = Recurrence::new(at("2026-01-31T09:00:00Z"), IntervalType::Month, 1, None).unwrap();
    let days: Vec<i8> = (0..6).map(|k| local(&r, r.occurrence(k)).day()).collect();
    assert_eq!(days, [31, 28, 31, 30, 31, 30]);
    let leap = Recurrence::new(at("2028-01-30T09:00:00Z"), IntervalType::Month, 1, None).unwrap();
    assert_eq!(local(&leap, leap.occurrence(1)).date(), date(2028, 2, 29));
    assert_eq!(local(&leap, leap.occurrence(2)).date(), date(2028, 3, 30));
}

#[test]
fn weekly_and_next_after() {
    let r = Recurrence::new(
        at("2026-01-05T06:00:00Z"),
        IntervalType::Week,
        2,
        Some("America/New_York"),
    )
    .unwrap();
    let (k, t) = r.next_after(at("2026-03-20T00:00:00Z"));
    assert_eq!(k, 6);
    assert_eq!(
        local(&r, t).to_string(),
        "2026-03-30T01:00:00",
        "01:00 local stays 01:00 across DST"
    );
    assert_eq!(r.next_after(at("2000-01-01T00:00:00Z")), (0, r.anchor));
    assert!(Recurrence::new(r.anchor, IntervalType::Day, 0, None).is_err());
    assert!(Recurrence::new(r.anchor, IntervalType::Day, 1, Some("Nowhere/City")).is_err());
}

const ZONES: &[&str] = &[
    "UTC",
    "Europe/Paris",
    "America/New_York",
    "Australia/Lord_Howe",
    "America/Santiago",
    "Asia/Kolkata",
    "Pacific/Chatham",
];

fn days_in_month(d: Date) -> i8 {
    d.days_in_month()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Occurrences strictly increase, and `next_after` agrees with walking the sequence.
    #[test]
    fn monotonic_and_next_after_agrees(
        anchor_s in 1_700_000_000i64..1_900_000_000,
        zone in 0..ZONES.len(),
        kind in 0..4usize,
        n in 1u32..5,
        probe in 0i64..(3 * 365 * 86_400),
    ) {
        let types = [IntervalType::Hour, IntervalType::Day, IntervalType::Week, IntervalType::Month];
        let r = Recurrence::new(Timestamp::from_second(anchor_s).unwrap(), types[kind], n, Some(ZONES[zone])).unwrap();
        let mut prev = r.occurrence(0);
        let mut seq = vec![prev];
        for k in 1..80 {
            let t = r.occurrence(k);
            prop_assert!(t > prev, "occurrence {k} {t} not after {prev}");
            seq.push(t);
            prev = t;
        }
        let after = r.anchor + SignedDuration::from_secs(probe);
        if after < *seq.last().unwrap() {
            let expected = seq.iter().enumerate().find(|(_, t)| **t > after).unwrap();
            prop_assert_eq!(r.next_after(after), (expected.0 as u32, *expected.1));
        }
    }

    /// A daily job runs exactly once on every local day, whatever the zone's transitions:
    /// no day is skipped or doubled, and the time of day only moves inside a gap.
    #[test]
    fn daily_runs_once_per_local_day(
        anchor_s in 1_700_000_000i64..1_900_000_000,
        zone in 0..ZONES.len(),
    ) {
        let r = Recurrence::new(Timestamp::from_second(anchor_s).unwrap(), IntervalType::Day, 1, Some(ZONES[zone])).unwrap();
        let start = local(&r, r.anchor);
        for k in 0..800u32 {
            let l = local(&r, r.occurrence(k));
            prop_assert_eq!(l.date(), start.date().checked_add(Span::new().days(k as i64)).unwrap());
            if l.time() != start.time() {
                // Only a gap moves it, and only forward, to the end of the gap.
                prop_assert!(l.time() > start.time());
                let wanted = l.date().to_datetime(start.time());
                let ambiguous = r.time_zone.to_ambiguous_timestamp(wanted);
                prop_assert!(matches!(ambiguous.offset(), AmbiguousOffset::Gap { .. }), "{wanted} is not in a gap but ran at {l}");
            }
        }
    }

    /// Monthly jobs keep their day, or the month's last day when the month is shorter, over a
    /// long horizon (50 years).
    #[test]
    fn monthly_clamps_over_long_horizons(
        year in 2000i16..2060, month in 1i8..=12, day in 1i8..=31, hour in 0i8..24, n in 1u32..4,
    ) {
        let first = date(year, month, 1);
        let day = day.min(days_in_month(first));
        let anchor_local = date(year, month, day).at(hour, 15, 0, 0);
        let r = Recurrence::new(resolve(&TimeZone::UTC, anchor_local), IntervalType::Month, n, None).unwrap();
        for k in 0..(600 / n) {
            let l = local(&r, r.occurrence(k));
            let expected_month = first.checked_add(Span::new().months(k as i64 * n as i64)).unwrap();
            prop_assert_eq!((l.year(), l.month()), (expected_month.year(), expected_month.month()));
            prop_assert_eq!(l.day(), day.min(days_in_month(expected_month)));
            prop_assert_eq!(l.hour(), hour);
        }
    }
}

/// Oracle: a naive walk that tries every minute of local time and keeps the first instant
/// whose local reading is at or after the wanted time, compared with `resolve` on a sample of
/// instants around real transitions.
#[test]
fn resolve_matches_a_minute_by_minute_oracle() {
    for zone in [
        "Europe/Paris",
        "America/New_York",
        "Australia/Lord_Howe",
        "America/Santiago",
    ] {
        let tz = TimeZone::get(zone).unwrap();
        for transition in tz.following(at("2026-01-01T00:00:00Z")).take(4) {
            let around = transition.timestamp();
            for minutes in (-150..150).step_by(10) {
                let instant = around + SignedDuration::from_mins(minutes);
                // Shifting the local reading by half an hour lands some probes in gaps and folds.
                let wanted = instant
                    .to_zoned_datetime(tz.clone())
                    .datetime()
                    .checked_add(Span::new().minutes(30))
                    .unwrap();
                let got = resolve(&tz, wanted);
                // The oracle scans real time from 4 hours before, minute by minute.
                let mut probe = instant - SignedDuration::from_hours(4);
                let oracle = loop {
                    if probe.to_zoned_datetime(tz.clone()).datetime() >= wanted {
                        break probe;
                    }
                    probe += SignedDuration::from_mins(1);
                };
                assert_eq!(got, oracle, "{zone} {wanted}");
            }
        }
    }
}
