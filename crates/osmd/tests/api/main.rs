//! osmd's API integration tests: one binary, every test against a server started in-process,
//! on SQLite and on PostgreSQL.

mod helpers;

mod actions;
mod agent_protocol;
mod bad_input;
mod crash;
mod errata;
mod groups;
mod identity;
mod instances;
mod operations;
mod packages;
mod report;
mod scheduled_jobs;
mod scheduler;
mod security;
mod work_requests;

pub use helpers::{Backend, TestApp, spawn_app};

use jiff::Timestamp;
use osm_core::ids::{ResourceKind, new_ocid};
use osm_core::{ManagedInstance, ManagedInstanceStatus, OsFamily, UpdateCounts};

/// An enrolled instance, written straight to the store (enrolment comes with the agent).
pub fn instance(compartment: &str, name: &str, family: OsFamily) -> ManagedInstance {
    ManagedInstance {
        id: new_ocid(ResourceKind::ManagedInstance),
        compartment_id: compartment.to_string(),
        display_name: name.to_string(),
        description: None,
        os_name: Some("Debian GNU/Linux".into()),
        os_version: Some("12".into()),
        os_kernel_version: Some("6.1.0-18-amd64".into()),
        os_family: family,
        status: ManagedInstanceStatus::Normal,
        last_checkin: Some(Timestamp::now()),
        last_boot: None,
        is_reboot_required: false,
        notification_topic_id: None,
        is_data_collection_authorized: false,
        updates: UpdateCounts {
            security: 2,
            bug: 1,
            enhancement: 0,
            other: 0,
        },
        time_created: Timestamp::now(),
        version: 1,
    }
}
