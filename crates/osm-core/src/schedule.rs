//! Recurrence math for scheduled jobs.
//!
//! A recurring job is anchored at its first occurrence (`anchor`) in its time zone. Occurrence
//! `k` is `anchor + k × interval`:
//! - `HOUR` intervals are elapsed time (every N hours of real time, whatever the clocks do);
//! - `DAY`, `WEEK` and `MONTH` intervals are calendar arithmetic on the anchor's local date and
//!   time of day, then resolved in the zone: a local time that does not exist (spring gap) runs
//!   at the first valid instant after it (the end of the gap); an ambiguous one (autumn fold)
//!   runs once, at the earlier instant;
//! - a monthly job anchored on day 29–31 runs on the last day of shorter months and returns to
//!   its day afterwards, because every occurrence is computed from the anchor, never from the
//!   previous (clamped) occurrence.

use jiff::civil::DateTime;
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Span, Timestamp};

use crate::enums::IntervalType;

/// A recurrence: the first occurrence, the interval and the zone it is computed in.
#[derive(Debug, Clone)]
pub struct Recurrence {
    pub anchor: Timestamp,
    pub interval_type: IntervalType,
    pub interval_value: u32,
    pub time_zone: TimeZone,
}

impl Recurrence {
    /// `time_zone`: an IANA name, or `None` for UTC.
    pub fn new(
        anchor: Timestamp,
        interval_type: IntervalType,
        interval_value: u32,
        time_zone: Option<&str>,
    ) -> Result<Recurrence, String> {
        if interval_value == 0 {
            return Err("intervalValue must be at least 1".into());
        }
        let time_zone = match time_zone {
            Some(name) => TimeZone::get(name).map_err(|_| format!("unknown time zone {name:?}"))?,
            None => TimeZone::UTC,
        };
        Ok(Recurrence {
            anchor,
            interval_type,
            interval_value,
            time_zone,
        })
    }

    /// The `k`-th occurrence (`k = 0` is the anchor).
    pub fn occurrence(&self, k: u32) -> Timestamp {
        let n = k as i64 * self.interval_value as i64;
        if k == 0 {
            return self.anchor;
        }
        match self.interval_type {
            IntervalType::Hour => self.anchor + SignedDuration::from_hours(n),
            IntervalType::Day | IntervalType::Week | IntervalType::Month => {
                let local = self
                    .anchor
                    .to_zoned_datetime(self.time_zone.clone())
                    .datetime();
                let span = match self.interval_type {
                    IntervalType::Day => Span::new().days(n),
                    IntervalType::Week => Span::new().weeks(n),
                    _ => Span::new().months(n),
                };
                // Civil month arithmetic clamps day 31 to the month's last day.
                let target = local.checked_add(span).unwrap_or(DateTime::MAX);
                resolve(&self.time_zone, target)
            }
        }
    }

    /// The first occurrence strictly after `after`, with its index.
    pub fn next_after(&self, after: Timestamp) -> (u32, Timestamp) {
        if self.anchor > after {
            return (0, self.anchor);
        }
        // Estimate the index from elapsed time, then step to the exact one: occurrences are
        // monotonic, so a short walk from a close guess finds it.
        let approx_secs: i64 = match self.interval_type {
            IntervalType::Hour => 3600,
            IntervalType::Day => 86_400,
            IntervalType::Week => 7 * 86_400,
            IntervalType::Month => 28 * 86_400,
        } * self.interval_value as i64;
        let elapsed = (after - self.anchor).as_secs().max(0);
        let mut k = (elapsed / approx_secs)
            .saturating_sub(2)
            .clamp(0, u32::MAX as i64 - 1) as u32;
        while k > 0 && self.occurrence(k) > after {
            k -= 1;
        }
        loop {
            let t = self.occurrence(k);
            if t > after {
                return (k, t);
            }
            if k == u32::MAX {
                return (k, t);
            }
            k += 1;
        }
    }

    /// Occurrences after `after` and no later than `until`, in order.
    pub fn between(&self, after: Timestamp, until: Timestamp) -> Vec<Timestamp> {
        let mut out = vec![];
        let (mut k, mut t) = self.next_after(after);
        while t <= until {
            out.push(t);
            k += 1;
            t = self.occurrence(k);
        }
        out
    }
}

/// The instant of a local time in `tz`: the earlier one in a fold, the end of the gap in a gap.
pub fn resolve(tz: &TimeZone, local: DateTime) -> Timestamp {
    let ambiguous = tz.to_ambiguous_timestamp(local);
    match ambiguous.offset() {
        AmbiguousOffset::Unambiguous { offset } => {
            offset.to_timestamp(local).unwrap_or(Timestamp::MAX)
        }
        AmbiguousOffset::Fold { before, .. } => {
            before.to_timestamp(local).unwrap_or(Timestamp::MAX)
        }
        AmbiguousOffset::Gap { after, .. } => {
            // Read with the offset after the gap, the local time lands before the transition;
            // the transition itself is the first instant that exists after the missing time.
            let probe = after.to_timestamp(local).unwrap_or(Timestamp::MAX);
            tz.following(probe)
                .next()
                .map(|transition| transition.timestamp())
                .unwrap_or(probe)
        }
    }
}

#[cfg(test)]
mod tests;
