//! Validation of operator input that does not need the store. Each check returns a message a
//! person can act on; the HTTP layer turns it into `400 InvalidParameter`.

use jiff::{SignedDuration, Timestamp};

use crate::enums::*;
use crate::model::ScheduledJob;

/// A `timeNextExecution` this far in the past is still accepted, to absorb clock skew and the
/// time a request spends in flight.
pub const PAST_GRACE: SignedDuration = SignedDuration::from_secs(60);
pub const MAX_INTERVAL_VALUE: u32 = 10_000;
pub const MAX_NAME_LEN: usize = 255;
pub const MAX_DESCRIPTION_LEN: usize = 4000;
pub const MAX_TARGETS: usize = 10_000;
pub const MAX_PACKAGES: usize = 1000;

/// Display names and compartment names: 1–255 characters, no control characters.
pub fn check_name(field: &str, value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err(format!("{field} must not be empty"));
    }
    if value.chars().count() > MAX_NAME_LEN {
        return Err(format!("{field} must be at most {MAX_NAME_LEN} characters"));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("{field} must not contain control characters"));
    }
    Ok(())
}

pub fn check_description(field: &str, value: &str) -> Result<(), String> {
    if value.chars().count() > MAX_DESCRIPTION_LEN {
        return Err(format!(
            "{field} must be at most {MAX_DESCRIPTION_LEN} characters"
        ));
    }
    Ok(())
}

/// Package and update names: non-empty, at most 255 characters, no whitespace or control
/// characters (they end up as arguments of a package manager).
pub fn check_package_name(field: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("{field} must not contain empty names"));
    }
    if value.len() > MAX_NAME_LEN {
        return Err(format!(
            "{field}: {value:?} is longer than {MAX_NAME_LEN} characters"
        ));
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) || value.starts_with('-') {
        return Err(format!(
            "{field}: {value:?} is not a package name (no spaces, control characters or leading '-')"
        ));
    }
    Ok(())
}

/// `intervalValue` travels as a string; it must be a positive integer.
pub fn parse_interval_value(value: &str) -> Result<u32, String> {
    match value.trim().parse::<u64>() {
        Ok(v) if v >= 1 && v <= MAX_INTERVAL_VALUE as u64 => Ok(v as u32),
        _ => Err(format!(
            "intervalValue must be a whole number from 1 to {MAX_INTERVAL_VALUE}, got {value:?}"
        )),
    }
}

/// Checks an IANA time zone name against the time zone database.
pub fn check_time_zone(value: &str) -> Result<(), String> {
    jiff::tz::db().get(value).map(|_| ()).map_err(|_| {
        format!("timeZone {value:?} is not an IANA time zone name such as Europe/Paris")
    })
}

/// Everything about a scheduled job that can be checked without the store. `is_new` also
/// requires `timeNextExecution` not to lie in the past (updates check it only when it changes,
/// which the caller expresses by passing `check_time`).
pub fn check_scheduled_job(
    job: &ScheduledJob,
    check_time: bool,
    now: Timestamp,
) -> Result<(), String> {
    check_name("displayName", &job.display_name)?;
    if let Some(d) = &job.description {
        check_description("description", d)?;
    }
    let Some(next) = job.time_next_execution else {
        return Err("timeNextExecution is required".into());
    };
    if check_time && next < now - PAST_GRACE {
        return Err(format!(
            "timeNextExecution {} is in the past; give a time after now",
            crate::time::format_rfc3339(next)
        ));
    }
    match job.schedule_type {
        ScheduleType::Recurring => {
            if job.interval_type.is_none() {
                return Err("a RECURRING job needs intervalType (HOUR, DAY, WEEK or MONTH)".into());
            }
            if job.interval_value.is_none() {
                return Err("a RECURRING job needs intervalValue, a whole number from 1".into());
            }
        }
        ScheduleType::Onetime => {}
    }
    if let Some(tz) = &job.time_zone {
        check_time_zone(tz)?;
    }
    match (
        job.managed_instances.is_empty(),
        job.managed_instance_groups.is_empty(),
    ) {
        (true, true) => {
            return Err(
                "a scheduled job needs targets: managedInstances or managedInstanceGroups".into(),
            );
        }
        (false, false) => {
            return Err(
                "managedInstances and managedInstanceGroups are mutually exclusive; give one"
                    .into(),
            );
        }
        _ => {}
    }
    if job.managed_instances.len() + job.managed_instance_groups.len() > MAX_TARGETS {
        return Err(format!(
            "a scheduled job may target at most {MAX_TARGETS} instances or groups"
        ));
    }
    for id in job
        .managed_instances
        .iter()
        .chain(&job.managed_instance_groups)
    {
        crate::ids::check_ocid("target id", &id.id).map_err(|e| e.to_string())?;
    }
    if job.package_names.len() > MAX_PACKAGES || job.update_names.len() > MAX_PACKAGES {
        return Err(format!(
            "at most {MAX_PACKAGES} package or update names per job"
        ));
    }
    for name in &job.package_names {
        check_package_name("packageNames", name)?;
    }
    for name in &job.update_names {
        check_package_name("updateNames", name)?;
    }
    match job.operation_type {
        OperationType::Install | OperationType::Update | OperationType::Remove => {
            let is_windows_install =
                job.operation_type == OperationType::Install && !job.update_names.is_empty();
            if job.package_names.is_empty() && !is_windows_install {
                return Err(format!(
                    "operationType {} needs packageNames{}",
                    job.operation_type,
                    if job.operation_type == OperationType::Install {
                        " (or updateNames for Windows)"
                    } else {
                        ""
                    }
                ));
            }
            if !job.update_names.is_empty() && job.operation_type != OperationType::Install {
                return Err("updateNames are only used with operationType INSTALL".into());
            }
        }
        OperationType::UpdateAll => {
            if !job.package_names.is_empty() || !job.update_names.is_empty() {
                return Err(
                    "operationType UPDATEALL takes updateType, not packageNames or updateNames"
                        .into(),
                );
            }
        }
        other => {
            return Err(format!(
                "operationType {other} is not supported by osm; use INSTALL, UPDATE, REMOVE or UPDATEALL"
            ));
        }
    }
    if job.update_type.is_some() && job.operation_type != OperationType::UpdateAll {
        return Err("updateType is only used with operationType UPDATEALL".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::IdName;

    fn job(now: Timestamp) -> ScheduledJob {
        ScheduledJob {
            id: "ocid1.osmsscheduledjob.oc1..a".into(),
            compartment_id: "ocid1.compartment.oc1..a".into(),
            display_name: "patch".into(),
            description: None,
            schedule_type: ScheduleType::Onetime,
            time_next_execution: Some(now + SignedDuration::from_hours(1)),
            time_last_execution: None,
            interval_type: None,
            interval_value: None,
            managed_instances: vec![IdName {
                id: "ocid1.instance.oc1..a".into(),
                display_name: "a".into(),
            }],
            managed_instance_groups: vec![],
            operation_type: OperationType::Install,
            update_type: None,
            package_names: vec!["bash".into()],
            update_names: vec![],
            lifecycle_state: LifecycleState::Active,
            freeform_tags: Default::default(),
            defined_tags: Default::default(),
            os_family: OsFamily::Linux,
            is_restricted: false,
            time_zone: None,
            time_created: now,
            version: 1,
        }
    }

    #[test]
    fn accepts_a_good_job_and_names_each_fault() {
        let now = Timestamp::from_second(1_900_000_000).unwrap();
        check_scheduled_job(&job(now), true, now).unwrap();
        type Mutation = Box<dyn Fn(&mut ScheduledJob)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (
                Box::new(|j| j.schedule_type = ScheduleType::Recurring),
                "intervalType",
            ),
            (
                Box::new(|j| {
                    j.schedule_type = ScheduleType::Recurring;
                    j.interval_type = Some(IntervalType::Day)
                }),
                "intervalValue",
            ),
            (
                Box::new(move |j| {
                    j.time_next_execution = Some(now - SignedDuration::from_hours(1))
                }),
                "in the past",
            ),
            (Box::new(|j| j.time_next_execution = None), "required"),
            (Box::new(|j| j.package_names.clear()), "needs packageNames"),
            (Box::new(|j| j.managed_instances.clear()), "needs targets"),
            (
                Box::new(|j| j.managed_instance_groups = j.managed_instances.clone()),
                "mutually exclusive",
            ),
            (
                Box::new(|j| j.operation_type = OperationType::Compound),
                "not supported",
            ),
            (
                Box::new(|j| j.package_names = vec!["-rf".into()]),
                "not a package name",
            ),
            (
                Box::new(|j| j.time_zone = Some("Mars/Olympus".into())),
                "IANA",
            ),
            (Box::new(|j| j.display_name = " ".into()), "displayName"),
            (
                Box::new(|j| j.update_type = Some(UpdateType::Security)),
                "only used with operationType UPDATEALL",
            ),
        ];
        for (mutate, expected) in cases {
            let mut j = job(now);
            mutate(&mut j);
            let err = check_scheduled_job(&j, true, now).unwrap_err();
            assert!(
                err.contains(expected),
                "{err:?} should mention {expected:?}"
            );
        }
    }

    #[test]
    fn interval_values() {
        assert_eq!(parse_interval_value("2"), Ok(2));
        for bad in ["0", "-1", "1.5", "x", "", "99999999999"] {
            assert!(parse_interval_value(bad).is_err(), "{bad}");
        }
    }
}
