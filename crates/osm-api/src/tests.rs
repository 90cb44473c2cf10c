use jiff::Timestamp;
use serde_json::json;

use super::*;

fn t(s: &str) -> Timestamp {
    osm_core::time::parse_rfc3339(s).unwrap()
}

#[test]
fn create_scheduled_job_from_the_sdk_body() {
    // The exact body the SDK sent in the wire reference's capture.
    let body = r#"{"compartmentId": "ocid1.compartment.oc1..aaaa", "displayName": "job1", "scheduleType": "ONETIME", "timeNextExecution": "2030-01-02T03:04:05.123456Z", "managedInstances": [{"id": "ocid1.instance.oc1.iad.aaaa", "displayName": "mi1"}], "operationType": "INSTALL", "packageNames": [{"name": "bash"}]}"#;
    let d: CreateScheduledJobDetails = serde_json::from_str(body).unwrap();
    assert_eq!(d.schedule_type, Some(ScheduleType::Onetime));
    assert_eq!(
        d.time_next_execution,
        Some(t("2030-01-02T03:04:05.123456Z"))
    );
    assert_eq!(d.package_names.unwrap()[0].name.as_deref(), Some("bash"));
    assert_eq!(
        d.managed_instances.unwrap()[0].id.as_deref(),
        Some("ocid1.instance.oc1.iad.aaaa")
    );
}

#[test]
fn unknown_enum_value_is_a_readable_error() {
    let err = serde_json::from_str::<CreateScheduledJobDetails>(r#"{"scheduleType": "SOMETIMES"}"#)
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("SOMETIMES") && msg.contains("ONETIME") && msg.contains("RECURRING"),
        "{msg}"
    );
}

#[test]
fn work_request_shape() {
    let wr = osm_core::WorkRequest {
        id: "ocid1.osmsworkrequest.oc1..a".into(),
        compartment_id: "ocid1.tenancy.oc1..t".into(),
        operation_type: OperationType::Install,
        status: WorkRequestStatus::InProgress,
        description: None,
        message: None,
        managed_instance: Some(osm_core::IdName {
            id: "ocid1.instance.oc1..i".into(),
            display_name: "web".into(),
        }),
        os_family: OsFamily::Linux,
        percent_complete: 50.0,
        time_accepted: t("2030-01-02T03:04:05.123456Z"),
        time_started: None,
        time_finished: None,
        parent_id: None,
        scheduled_job_id: None,
        resources: vec![],
        children_ids: vec![],
        action: None,
    };
    let v = serde_json::to_value(WorkRequest::from(&wr)).unwrap();
    assert_eq!(
        v["managedInstanceId"],
        json!({"id": "ocid1.instance.oc1..i", "displayName": "web"})
    );
    assert_eq!(v["percentComplete"], json!(50.0));
    assert_eq!(v["status"], "IN_PROGRESS");
    assert_eq!(v["timeAccepted"], "2030-01-02T03:04:05.123Z");
    assert!(
        v.get("timeStarted").is_none(),
        "absent fields are omitted, never null"
    );
    assert!(v.get("description").is_none());
}

#[test]
fn instance_counters_are_always_numbers() {
    let mi = osm_core::ManagedInstance {
        id: "ocid1.instance.oc1..i".into(),
        compartment_id: "ocid1.tenancy.oc1..t".into(),
        display_name: "web".into(),
        description: None,
        os_name: None,
        os_version: None,
        os_kernel_version: None,
        os_family: OsFamily::Linux,
        status: ManagedInstanceStatus::Normal,
        last_checkin: Some(t("2030-01-02T03:04:05Z")),
        last_boot: None,
        is_reboot_required: false,
        notification_topic_id: None,
        is_data_collection_authorized: false,
        updates: Default::default(),
        time_created: t("2030-01-02T03:04:05Z"),
        version: 1,
    };
    let v = serde_json::to_value(ManagedInstance::from_domain(&mi, vec![], 0, 0)).unwrap();
    assert_eq!(v["updatesAvailable"], json!(0));
    assert_eq!(v["securityUpdatesAvailable"], json!(0));
    assert_eq!(v["isRebootRequired"], json!(false));
    assert_eq!(v["lastCheckin"], "2030-01-02T03:04:05.000Z");
    let s = serde_json::to_value(ManagedInstanceSummary::from(&mi)).unwrap();
    assert_eq!(s["updatesAvailable"], json!(0));
}

#[test]
fn scheduled_job_carries_the_time_zone_extension() {
    let job = osm_core::ScheduledJob {
        id: "ocid1.osmsscheduledjob.oc1..j".into(),
        compartment_id: "ocid1.tenancy.oc1..t".into(),
        display_name: "nightly".into(),
        description: None,
        schedule_type: ScheduleType::Recurring,
        time_next_execution: Some(t("2030-01-02T03:04:05Z")),
        time_last_execution: None,
        interval_type: Some(IntervalType::Day),
        interval_value: Some(1),
        managed_instances: vec![],
        managed_instance_groups: vec![osm_core::IdName {
            id: "g".into(),
            display_name: "web".into(),
        }],
        operation_type: OperationType::UpdateAll,
        update_type: Some(UpdateType::Security),
        package_names: vec![],
        update_names: vec![],
        lifecycle_state: LifecycleState::Active,
        freeform_tags: Default::default(),
        defined_tags: Default::default(),
        os_family: OsFamily::Linux,
        is_restricted: false,
        time_zone: Some("Europe/Paris".into()),
        time_created: t("2030-01-01T00:00:00Z"),
        version: 1,
    };
    let v = serde_json::to_value(ScheduledJob::from_domain(&job, vec![])).unwrap();
    assert_eq!(v["timeZone"], "Europe/Paris");
    assert_eq!(
        v["intervalValue"], "1",
        "intervalValue is a string on the wire"
    );
    assert_eq!(
        v["managedInstanceGroups"],
        json!([{"id": "g", "displayName": "web"}])
    );
    assert_eq!(v["scheduleType"], "RECURRING");
}

#[test]
fn schemas_cover_every_model() {
    let names: Vec<String> = schemas().into_iter().map(|(n, _)| n).collect();
    for n in [
        "ScheduledJob",
        "WorkRequest",
        "ManagedInstance",
        "Compartment",
        "ApiError",
        "Id",
    ] {
        assert!(names.contains(&n.to_string()), "{n} missing from {names:?}");
    }
}
