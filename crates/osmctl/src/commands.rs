//! Each subcommand: the checks that need more than one flag, the call, the output.

use jiff::Timestamp;
use osm_client::ApiResponse;
use serde_json::{Map, Value, json};

use crate::api::{Api, Failure, Query};
use crate::cli::*;
use crate::output::{self, Kind};
use crate::parse;
use crate::wait;

const OSMS: &str = "/20190801";
const IDENTITY: &str = "/20160918";

pub async fn run(cli: Cli) -> Result<(), Failure> {
    let out = cli.global.output;
    // Everything that can be checked without the server is checked before connecting.
    let prepared = prepare(&cli.command, Timestamp::now())?;
    let api = Api::connect(&cli.global)?;
    match cli.command {
        Command::Compartment(c) => compartment(&api, out, c).await,
        Command::Instance(c) => instance(&api, out, c).await,
        Command::Group(c) => group(&api, out, c).await,
        Command::Job(c) => job(&api, out, c, prepared).await,
        Command::WorkRequest(c) => work_request(&api, out, c).await,
        Command::InstallKey(c) => install_key(&api, out, c).await,
        Command::Errata(c) => errata(&api, out, c, prepared).await,
        Command::Report(c) => crate::report::run(&api, out, c).await,
        Command::Completions { .. } => Ok(()),
    }
}

/// Inputs computed from several flags (and the clock) before anything is sent.
#[derive(Default)]
pub struct Prepared {
    /// The body of a job create or update.
    body: Option<Value>,
    /// `timeEnd` of an upcoming-jobs list.
    time_end: Option<Timestamp>,
}

fn prepare(command: &Command, now: Timestamp) -> Result<Prepared, Failure> {
    let usage = Failure::Usage;
    Ok(match command {
        Command::Job(JobCmd::Create {
            compartment: _,
            name,
            description,
            schedule,
            instances,
            groups,
            operation,
            packages,
            windows_updates,
            update_type,
            os_family,
            tags,
        }) => {
            let mut body = Map::new();
            put(&mut body, "displayName", Some(name));
            put(&mut body, "description", description.as_ref());
            schedule_fields(&mut body, schedule, now, true)?;
            body.entry("scheduleType").or_insert(json!("ONETIME"));
            if !instances.is_empty() {
                body.insert("managedInstances".into(), ids(instances));
            }
            if !groups.is_empty() {
                body.insert("managedInstanceGroups".into(), ids(groups));
            }
            check_operation(*operation, packages, windows_updates, *update_type)?;
            body.insert("operationType".into(), json!(operation.wire()));
            if !packages.is_empty() {
                body.insert("packageNames".into(), package_names(packages));
            }
            if !windows_updates.is_empty() {
                body.insert("updateNames".into(), json!(windows_updates));
            }
            put(&mut body, "updateType", update_type.map(|u| u.wire()));
            put(&mut body, "osFamily", os_family.map(|o| o.wire()));
            if !tags.is_empty() {
                body.insert("freeformTags".into(), tag_map(tags));
            }
            Prepared {
                body: Some(Value::Object(body)),
                ..Default::default()
            }
        }
        Command::Job(JobCmd::Update {
            name,
            description,
            schedule,
            once,
            operation,
            packages,
            update_type,
            tags,
            ..
        }) => {
            let mut body = Map::new();
            put(&mut body, "displayName", name.as_ref());
            put(&mut body, "description", description.as_ref());
            schedule_fields(&mut body, schedule, now, false)?;
            if *once {
                body.insert("scheduleType".into(), json!("ONETIME"));
            }
            put(&mut body, "operationType", operation.map(|o| o.wire()));
            if !packages.is_empty() {
                body.insert("packageNames".into(), package_names(packages));
            }
            put(&mut body, "updateType", update_type.map(|u| u.wire()));
            if !tags.is_empty() {
                body.insert("freeformTags".into(), tag_map(tags));
            }
            if body.is_empty() {
                return Err(usage(
                    "nothing to change: give --name, --description, --at, --every, --once, \
                     --time-zone, --operation, --package, --update-type or --tag"
                        .into(),
                ));
            }
            Prepared {
                body: Some(Value::Object(body)),
                ..Default::default()
            }
        }
        Command::Errata(ErrataCmd::Import { dir }) => Prepared {
            body: Some(json!({ "records": read_osv_dir(dir).map_err(usage)? })),
            ..Default::default()
        },
        Command::Job(JobCmd::Upcoming { before, .. }) => Prepared {
            time_end: Some(
                parse::at(before, now, &jiff::tz::TimeZone::UTC)
                    .map_err(|e| usage(format!("--before {e}")))?,
            ),
            ..Default::default()
        },
        Command::Compartment(CompartmentCmd::Update {
            name,
            description,
            tags,
            ..
        })
        | Command::Group(GroupCmd::Update {
            name,
            description,
            tags,
            ..
        }) if name.is_none() && description.is_none() && tags.is_empty() => {
            return Err(usage(
                "nothing to change: give --name, --description or --tag".into(),
            ));
        }
        Command::Instance(InstanceCmd::Update {
            notification_topic_id: None,
            data_collection_authorized: None,
            ..
        }) => {
            return Err(usage(
                "nothing to change: give --notification-topic-id or --data-collection-authorized"
                    .into(),
            ));
        }
        _ => Prepared::default(),
    })
}

/// `scheduleType`, `timeNextExecution`, `intervalType`, `intervalValue` and `timeZone` from
/// `--at`, `--every` and `--time-zone`. A new job needs `--at` or `--every`; a recurring job
/// without `--at` first runs one interval from now (computed in its zone).
fn schedule_fields(
    body: &mut Map<String, Value>,
    s: &Schedule,
    now: Timestamp,
    new: bool,
) -> Result<(), Failure> {
    let zone = parse::time_zone(s.time_zone.as_deref())
        .map_err(|e| Failure::Usage(format!("--time-zone: {e}")))?;
    let at =
        s.at.as_deref()
            .map(|a| parse::at(a, now, &zone))
            .transpose()
            .map_err(|e| Failure::Usage(format!("--at {e}")))?;
    let first = match (at, s.every) {
        (Some(t), _) => Some(t),
        (None, Some(every)) if new => {
            let recurrence = osm_core::schedule::Recurrence::new(
                now,
                every.interval_type,
                every.value,
                s.time_zone.as_deref(),
            )
            .map_err(Failure::Usage)?;
            Some(recurrence.occurrence(1))
        }
        (None, None) if new => {
            return Err(Failure::Usage(
                "say when the job runs: --at TIME (once), --every INTERVAL (repeating), or both"
                    .into(),
            ));
        }
        (None, _) => None,
    };
    if let Some(t) = first {
        body.insert(
            "timeNextExecution".into(),
            json!(osm_core::time::format_rfc3339(t)),
        );
    }
    if let Some(every) = s.every {
        body.insert("scheduleType".into(), json!("RECURRING"));
        body.insert("intervalType".into(), json!(every.interval_type.as_str()));
        body.insert("intervalValue".into(), json!(every.value.to_string()));
    }
    put(body, "timeZone", s.time_zone.as_ref());
    Ok(())
}

fn check_operation(
    op: Operation,
    packages: &[String],
    windows_updates: &[String],
    update_type: Option<UpdateType>,
) -> Result<(), Failure> {
    let usage = |m: &str| Err(Failure::Usage(m.into()));
    match op {
        Operation::UpdateAll if !packages.is_empty() || !windows_updates.is_empty() => usage(
            "--operation update-all installs every update (of --update-type); it takes no --package",
        ),
        Operation::Install if packages.is_empty() && windows_updates.is_empty() => {
            usage("--operation install needs --package NAME (or --windows-update NAME)")
        }
        Operation::Update | Operation::Remove if packages.is_empty() => {
            usage("--operation update and remove need --package NAME")
        }
        Operation::Update | Operation::Remove if !windows_updates.is_empty() => {
            usage("--windows-update goes with --operation install")
        }
        Operation::Install | Operation::Update | Operation::Remove if update_type.is_some() => {
            usage("--update-type goes with --operation update-all")
        }
        _ => Ok(()),
    }
}

fn put<T: serde::Serialize>(body: &mut Map<String, Value>, key: &str, value: Option<T>) {
    if let Some(v) = value {
        body.insert(key.into(), json!(v));
    }
}

fn ids(list: &[String]) -> Value {
    Value::Array(list.iter().map(|id| json!({ "id": id })).collect())
}

fn package_names(list: &[String]) -> Value {
    Value::Array(list.iter().map(|n| json!({ "name": n })).collect())
}

fn tag_map(tags: &[(String, String)]) -> Value {
    Value::Object(tags.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
}

fn compartment_or_tenancy<'a>(api: &'a Api, c: &'a InCompartment) -> &'a str {
    c.compartment_id.as_deref().unwrap_or(&api.tenancy)
}

/// A call that answered no body: the table form says what happened, the JSON form prints nothing
/// (the API sent nothing).
fn done(out: Output, what: String) {
    if out == Output::Table {
        println!("{what}");
    }
}

/// The answer to an asynchronous action: the work request id, then optionally follow it.
async fn accepted(api: &Api, out: Output, resp: ApiResponse, wait: &Wait) -> Result<(), Failure> {
    let id = resp
        .header("opc-work-request-id")
        .ok_or_else(|| {
            Failure::Connection("the server accepted the action but named no work request".into())
        })?
        .to_string();
    if wait.wait {
        return wait::follow(api, &id, &wait.options, out).await;
    }
    match out {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "opc-work-request-id": id }))
                .expect("JSON serialises")
        ),
        Output::Table => {
            println!("{id}");
            eprintln!("osmctl: follow it with: osmctl work-request wait {id}");
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------

async fn compartment(api: &Api, out: Output, cmd: CompartmentCmd) -> Result<(), Failure> {
    let base = format!("{IDENTITY}/compartments");
    match cmd {
        CompartmentCmd::List {
            parent,
            recursive,
            name,
            lifecycle_state,
            paging,
        } => {
            let mut q = Query::new();
            q.set("compartmentId", compartment_or_tenancy(api, &parent))
                .opt("compartmentIdInSubtree", recursive.then_some(true))
                .opt("name", name)
                .opt("lifecycleState", lifecycle_state.map(|s| s.wire()));
            let rows = api.list(&base, q, &paging, "NAME").await?;
            output::list(out, Kind::Compartment, &rows)
        }
        CompartmentCmd::Get { id } => {
            output::object(out, &api.get(&format!("{base}/{id}")).await?.body)
        }
        CompartmentCmd::Create {
            parent,
            name,
            description,
            tags,
        } => {
            let mut body = json!({
                "compartmentId": parent.as_deref().unwrap_or(&api.tenancy),
                "name": name,
                "description": description,
            });
            if !tags.is_empty() {
                body["freeformTags"] = tag_map(&tags);
            }
            output::object(out, &api.post(&base, Some(&body)).await?.body)
        }
        CompartmentCmd::Update {
            id,
            name,
            description,
            tags,
            if_match,
        } => {
            let mut body = Map::new();
            put(&mut body, "name", name);
            put(&mut body, "description", description);
            if !tags.is_empty() {
                body.insert("freeformTags".into(), tag_map(&tags));
            }
            let resp = api
                .put(
                    &format!("{base}/{id}"),
                    &Value::Object(body),
                    if_match.if_match.as_deref(),
                )
                .await?;
            output::object(out, &resp.body)
        }
        CompartmentCmd::Delete { id, if_match } => {
            api.delete(&format!("{base}/{id}"), if_match.if_match.as_deref())
                .await?;
            done(out, format!("deleted {id}"));
            Ok(())
        }
    }
}

async fn instance(api: &Api, out: Output, cmd: InstanceCmd) -> Result<(), Failure> {
    let base = format!("{OSMS}/managedInstances");
    let action = |id: &str, what: &str| format!("{base}/{id}/actions/{what}");
    match cmd {
        InstanceCmd::List {
            compartment,
            display_name,
            os_family,
            paging,
        } => {
            let mut q = Query::new();
            q.set("compartmentId", compartment_or_tenancy(api, &compartment))
                .opt("displayName", display_name)
                .opt("osFamily", os_family.map(|o| o.wire()));
            let rows = api.list(&base, q, &paging, "DISPLAYNAME").await?;
            output::list(out, Kind::Instance, &rows)
        }
        InstanceCmd::Get { id } => {
            output::object(out, &api.get(&format!("{base}/{id}")).await?.body)
        }
        InstanceCmd::Update {
            id,
            notification_topic_id,
            data_collection_authorized,
            if_match,
        } => {
            let mut body = Map::new();
            put(&mut body, "notificationTopicId", notification_topic_id);
            put(
                &mut body,
                "isDataCollectionAuthorized",
                data_collection_authorized,
            );
            let resp = api
                .put(
                    &format!("{base}/{id}"),
                    &Value::Object(body),
                    if_match.if_match.as_deref(),
                )
                .await?;
            output::object(out, &resp.body)
        }
        InstanceCmd::Install { id, package, wait } => {
            package_action(api, out, &action(&id, "packages/install"), &package, &wait).await
        }
        InstanceCmd::Remove { id, package, wait } => {
            package_action(api, out, &action(&id, "packages/remove"), &package, &wait).await
        }
        InstanceCmd::UpdatePackage { id, package, wait } => {
            package_action(api, out, &action(&id, "packages/update"), &package, &wait).await
        }
        InstanceCmd::UpdateAll {
            id,
            update_type,
            wait,
        } => {
            let mut q = Query::new();
            q.opt("updateType", update_type.map(|u| u.wire()));
            let resp = api
                .post(&q.path(&action(&id, "packages/updateAll")), None)
                .await?;
            accepted(api, out, resp, &wait).await
        }
        InstanceCmd::InstallWindowsUpdate { id, update, wait } => {
            let mut q = Query::new();
            q.set("windowsUpdateName", update);
            let resp = api
                .post(&q.path(&action(&id, "updates/install")), None)
                .await?;
            accepted(api, out, resp, &wait).await
        }
        InstanceCmd::InstallAllWindowsUpdates {
            id,
            update_type,
            wait,
        } => {
            let mut q = Query::new();
            q.opt("updateType", update_type.map(|u| u.wire()));
            let resp = api
                .post(&q.path(&action(&id, "updates/installAll")), None)
                .await?;
            accepted(api, out, resp, &wait).await
        }
    }
}

async fn package_action(
    api: &Api,
    out: Output,
    path: &str,
    package: &str,
    wait: &Wait,
) -> Result<(), Failure> {
    let mut q = Query::new();
    q.set("softwarePackageName", package);
    let resp = api.post(&q.path(path), None).await?;
    accepted(api, out, resp, wait).await
}

async fn group(api: &Api, out: Output, cmd: GroupCmd) -> Result<(), Failure> {
    let base = format!("{OSMS}/managedInstanceGroups");
    match cmd {
        GroupCmd::List {
            compartment,
            display_name,
            lifecycle_state,
            os_family,
            paging,
        } => {
            let mut q = Query::new();
            q.set("compartmentId", compartment_or_tenancy(api, &compartment))
                .opt("displayName", display_name)
                .opt("lifecycleState", lifecycle_state.map(|s| s.wire()))
                .opt("osFamily", os_family.map(|o| o.wire()));
            let rows = api.list(&base, q, &paging, "DISPLAYNAME").await?;
            output::list(out, Kind::Group, &rows)
        }
        GroupCmd::Get { id } => output::object(out, &api.get(&format!("{base}/{id}")).await?.body),
        GroupCmd::Create {
            compartment,
            name,
            description,
            os_family,
            tags,
        } => {
            let mut body = Map::new();
            put(
                &mut body,
                "compartmentId",
                Some(compartment_or_tenancy(api, &compartment)),
            );
            put(&mut body, "displayName", Some(name));
            put(&mut body, "description", description);
            put(&mut body, "osFamily", os_family.map(|o| o.wire()));
            if !tags.is_empty() {
                body.insert("freeformTags".into(), tag_map(&tags));
            }
            let resp = api.post(&base, Some(&Value::Object(body))).await?;
            output::object(out, &resp.body)
        }
        GroupCmd::Update {
            id,
            name,
            description,
            tags,
            if_match,
        } => {
            let mut body = Map::new();
            put(&mut body, "displayName", name);
            put(&mut body, "description", description);
            if !tags.is_empty() {
                body.insert("freeformTags".into(), tag_map(&tags));
            }
            let resp = api
                .put(
                    &format!("{base}/{id}"),
                    &Value::Object(body),
                    if_match.if_match.as_deref(),
                )
                .await?;
            output::object(out, &resp.body)
        }
        GroupCmd::Delete { id, if_match } => {
            api.delete(&format!("{base}/{id}"), if_match.if_match.as_deref())
                .await?;
            done(out, format!("deleted {id}"));
            Ok(())
        }
        GroupCmd::Move { id, to, if_match } => {
            api.post_if_match(
                &format!("{base}/{id}/actions/changeCompartment"),
                Some(&json!({ "compartmentId": to })),
                if_match.if_match.as_deref(),
            )
            .await?;
            done(out, format!("moved {id} to {to}"));
            Ok(())
        }
        GroupCmd::Attach { id, instances } => {
            for mi in instances {
                let mut q = Query::new();
                q.set("managedInstanceId", &mi);
                api.post(
                    &q.path(&format!("{base}/{id}/actions/attachManagedInstance")),
                    None,
                )
                .await?;
                done(out, format!("attached {mi}"));
            }
            Ok(())
        }
        GroupCmd::Detach { id, instances } => {
            for mi in instances {
                let mut q = Query::new();
                q.set("managedInstanceId", &mi);
                api.post(
                    &q.path(&format!("{base}/{id}/actions/detachManagedInstance")),
                    None,
                )
                .await?;
                done(out, format!("detached {mi}"));
            }
            Ok(())
        }
        GroupCmd::UpdateAll {
            id,
            update_type,
            wait,
        } => {
            let mut q = Query::new();
            q.opt("updateType", update_type.map(|u| u.wire()));
            let resp = api
                .post(
                    &q.path(&format!("{base}/{id}/actions/updates/installAll")),
                    None,
                )
                .await?;
            accepted(api, out, resp, &wait).await
        }
    }
}

async fn job(api: &Api, out: Output, cmd: JobCmd, prepared: Prepared) -> Result<(), Failure> {
    let base = format!("{OSMS}/scheduledJobs");
    match cmd {
        JobCmd::List {
            compartment,
            display_name,
            instance,
            group,
            operation,
            lifecycle_state,
            os_family,
            paging,
        } => {
            let mut q = Query::new();
            q.set("compartmentId", compartment_or_tenancy(api, &compartment))
                .opt("displayName", display_name)
                .opt("managedInstanceId", instance)
                .opt("managedInstanceGroupId", group)
                .opt("operationType", operation.map(|o| o.wire()))
                .opt("lifecycleState", lifecycle_state.map(|s| s.wire()))
                .opt("osFamily", os_family.map(|o| o.wire()));
            let rows = api.list(&base, q, &paging, "DISPLAYNAME").await?;
            output::list(out, Kind::Job, &rows)
        }
        JobCmd::Get { id } => output::object(out, &api.get(&format!("{base}/{id}")).await?.body),
        JobCmd::Create { compartment, .. } => {
            let mut body = prepared.body.expect("prepared before connecting");
            body["compartmentId"] = json!(compartment_or_tenancy(api, &compartment));
            output::object(out, &api.post(&base, Some(&body)).await?.body)
        }
        JobCmd::Update { id, if_match, .. } => {
            let body = prepared.body.expect("prepared before connecting");
            let resp = api
                .put(&format!("{base}/{id}"), &body, if_match.if_match.as_deref())
                .await?;
            output::object(out, &resp.body)
        }
        JobCmd::Delete { id, if_match } => {
            api.delete(&format!("{base}/{id}"), if_match.if_match.as_deref())
                .await?;
            done(out, format!("deleted {id}"));
            Ok(())
        }
        JobCmd::Move { id, to, if_match } => {
            api.post_if_match(
                &format!("{base}/{id}/actions/changeCompartment"),
                Some(&json!({ "compartmentId": to })),
                if_match.if_match.as_deref(),
            )
            .await?;
            done(out, format!("moved {id} to {to}"));
            Ok(())
        }
        JobCmd::RunNow { id, if_match } => {
            api.post_if_match(
                &format!("{base}/{id}/actions/runNow"),
                None,
                if_match.if_match.as_deref(),
            )
            .await?;
            done(
                out,
                format!("{id}: fired now; its work requests: osmctl job get {id}"),
            );
            Ok(())
        }
        JobCmd::SkipNext { id, if_match } => {
            api.post_if_match(
                &format!("{base}/{id}/actions/skipNextExecution"),
                None,
                if_match.if_match.as_deref(),
            )
            .await?;
            done(out, format!("{id}: next occurrence skipped"));
            Ok(())
        }
        JobCmd::Upcoming {
            compartment,
            display_name,
            os_family,
            paging,
            ..
        } => {
            let time_end = prepared.time_end.expect("prepared before connecting");
            let mut q = Query::new();
            q.set("compartmentId", compartment_or_tenancy(api, &compartment))
                .set("timeEnd", osm_core::time::format_rfc3339(time_end))
                .opt("displayName", display_name)
                .opt("osFamily", os_family.map(|o| o.wire()));
            let rows = api
                .list(
                    &format!("{base}/upcomingSchedules"),
                    q,
                    &paging,
                    "DISPLAYNAME",
                )
                .await?;
            output::list(out, Kind::Job, &rows)
        }
    }
}

async fn work_request(api: &Api, out: Output, cmd: WorkRequestCmd) -> Result<(), Failure> {
    let base = format!("{OSMS}/workRequests");
    match cmd {
        WorkRequestCmd::List {
            compartment,
            display_name,
            instance,
            os_family,
            paging,
        } => {
            let mut q = Query::new();
            q.set("compartmentId", compartment_or_tenancy(api, &compartment))
                .opt("displayName", display_name)
                .opt("managedInstanceId", instance)
                .opt("osFamily", os_family.map(|o| o.wire()));
            let rows = api.list(&base, q, &paging, "DISPLAYNAME").await?;
            output::list(out, Kind::WorkRequest, &rows)
        }
        WorkRequestCmd::Get { id } => {
            output::object(out, &api.get(&format!("{base}/{id}")).await?.body)
        }
        WorkRequestCmd::Logs { id, paging } => {
            let rows = api
                .list(
                    &format!("{base}/{id}/logs"),
                    Query::new(),
                    &paging,
                    "DISPLAYNAME",
                )
                .await?;
            output::list(out, Kind::Log, &rows)
        }
        WorkRequestCmd::Errors { id, paging } => {
            let rows = api
                .list(
                    &format!("{base}/{id}/errors"),
                    Query::new(),
                    &paging,
                    "DISPLAYNAME",
                )
                .await?;
            output::list(out, Kind::Error, &rows)
        }
        WorkRequestCmd::Cancel { id, wait } => {
            let resp = api.delete(&format!("{base}/{id}"), None).await?;
            accepted(api, out, resp, &wait).await
        }
        WorkRequestCmd::Wait { id, options } => wait::follow(api, &id, &options, out).await,
    }
}

async fn install_key(api: &Api, out: Output, cmd: InstallKeyCmd) -> Result<(), Failure> {
    let base = "/osm/v1/installKeys";
    match cmd {
        InstallKeyCmd::Create { compartment, name } => {
            let mut body = Map::new();
            put(
                &mut body,
                "compartmentId",
                Some(compartment_or_tenancy(api, &compartment)),
            );
            put(&mut body, "displayName", name);
            let resp = api.post(base, Some(&Value::Object(body))).await?;
            output::object(out, &resp.body)?;
            if out == Output::Table {
                eprintln!("osmctl: keep the key now; it is not shown again");
            }
            Ok(())
        }
        InstallKeyCmd::List { compartment } => {
            let mut q = Query::new();
            q.set("compartmentId", compartment_or_tenancy(api, &compartment));
            let resp = api.get(&q.path(base)).await?;
            let rows: Vec<Box<serde_json::value::RawValue>> = serde_json::from_slice(&resp.body)
                .map_err(|e| Failure::Connection(format!("{base} answered malformed JSON: {e}")))?;
            output::list(out, Kind::InstallKey, &rows)
        }
        InstallKeyCmd::Revoke { id } => {
            api.delete(&format!("{base}/{id}"), None).await?;
            done(out, format!("revoked {id}"));
            Ok(())
        }
    }
}

/// Every `*.json` file of `dir`, in name order, each checked as one OSV record, by the reader
/// osmd's `errata_dir` uses too ([`osm_core::errata::read_osv_files`]). The first bad one stops
/// it: `FILE:LINE:COLUMN: what is wrong`. The records go out as the compact JSON the reader
/// kept.
fn read_osv_dir(dir: &std::path::Path) -> Result<Vec<Box<serde_json::value::RawValue>>, String> {
    let listing: std::io::Result<Vec<std::path::PathBuf>> =
        std::fs::read_dir(dir).and_then(|entries| entries.map(|e| e.map(|e| e.path())).collect());
    let records = osm_core::errata::read_osv_files(dir, listing, |p| std::fs::read_to_string(p))?;
    if records.is_empty() {
        return Err(format!(
            "{} holds no *.json file; give a directory of OSV records",
            dir.display()
        ));
    }
    records
        .into_iter()
        .map(|r| {
            serde_json::value::RawValue::from_string(r.document)
                .map_err(|e| format!("{}: {e}", dir.display()))
        })
        .collect()
}

async fn errata(api: &Api, out: Output, cmd: ErrataCmd, prepared: Prepared) -> Result<(), Failure> {
    match cmd {
        ErrataCmd::List {
            compartment,
            instance,
            erratum_id,
            advisory_name,
            issued_after,
            issued_before,
            paging,
        } => {
            let mut q = Query::new();
            let rows = if let Some(id) = instance {
                q.opt("compartmentId", compartment.compartment_id)
                    .opt("displayName", advisory_name);
                let path = format!("{OSMS}/managedInstances/{id}/errata");
                api.list(&path, q, &paging, "DISPLAYNAME").await?
            } else {
                q.set("compartmentId", compartment_or_tenancy(api, &compartment))
                    .opt("erratumId", erratum_id)
                    .opt("advisoryName", advisory_name)
                    .opt(
                        "timeIssueDateStart",
                        issued_after.map(osm_core::time::format_rfc3339),
                    )
                    .opt(
                        "timeIssueDateEnd",
                        issued_before.map(osm_core::time::format_rfc3339),
                    )
                    .opt(
                        "sortBy",
                        paging.sort_by.map(|s| match s {
                            SortBy::TimeCreated => "ISSUEDATE",
                            SortBy::Name => "ADVISORYNAME",
                        }),
                    );
                let paging = Paging {
                    sort_by: None,
                    ..paging
                };
                api.list(&format!("{OSMS}/errata"), q, &paging, "ADVISORYNAME")
                    .await?
            };
            output::list(out, Kind::Erratum, &rows)
        }
        ErrataCmd::Get { id } => {
            output::object(out, &api.get(&format!("{OSMS}/errata/{id}")).await?.body)
        }
        ErrataCmd::Import { dir } => {
            let body = prepared.body.expect("prepared");
            let resp = api.post("/osm/v1/errata/import", Some(&body)).await?;
            if out == Output::Json {
                return output::object(out, &resp.body);
            }
            let s: Value = serde_json::from_slice(&resp.body).map_err(|e| {
                Failure::Connection(format!("the import answered malformed JSON: {e}"))
            })?;
            let n = |k: &str| s[k].as_u64().unwrap_or(0);
            println!(
                "imported {} OSV records from {}: {} new, {} updated, {} unchanged, {} older than osm's (kept osm's); {} updates on {} instances changed",
                n("records"),
                dir.display(),
                n("created"),
                n("updated"),
                n("unchanged"),
                n("stale"),
                n("updatesChanged"),
                n("instancesChanged")
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn prepared(args: &[&str]) -> Result<Value, String> {
        let cli = Cli::try_parse_from(args).map_err(|e| e.to_string())?;
        let now: Timestamp = "2030-03-10T12:00:00Z".parse().unwrap();
        prepare(&cli.command, now)
            .map(|p| p.body.unwrap_or(Value::Null))
            .map_err(|f| f.line())
    }

    const G: &str = "ocid1.osmsmanagedinstancegroup.oc1..aaaa";

    #[test]
    fn a_recurring_job_without_at_starts_one_interval_from_now() {
        let body = prepared(&[
            "osmctl",
            "job",
            "create",
            "--name",
            "n",
            "--group",
            G,
            "--operation",
            "update-all",
            "--update-type",
            "security",
            "--every",
            "1d",
        ])
        .unwrap();
        assert_eq!(
            body,
            json!({"displayName": "n", "timeNextExecution": "2030-03-11T12:00:00.000Z",
                "scheduleType": "RECURRING", "intervalType": "DAY", "intervalValue": "1",
                "managedInstanceGroups": [{"id": G}], "operationType": "UPDATEALL",
                "updateType": "SECURITY"})
        );
    }

    #[test]
    fn a_onetime_job_at_a_local_time() {
        let body = prepared(&[
            "osmctl",
            "job",
            "create",
            "--name",
            "n",
            "--instance",
            "ocid1.instance.oc1..i",
            "--operation",
            "install",
            "--package",
            "htop",
            "--package",
            "jq",
            "--at",
            "2030-07-01T08:00",
            "--time-zone",
            "Europe/Paris",
        ])
        .unwrap();
        assert_eq!(body["scheduleType"], "ONETIME");
        assert_eq!(body["timeNextExecution"], "2030-07-01T06:00:00.000Z");
        assert_eq!(body["timeZone"], "Europe/Paris");
        assert_eq!(
            body["packageNames"],
            json!([{"name": "htop"}, {"name": "jq"}])
        );
    }

    #[test]
    fn job_flags_that_contradict_each_other_are_usage_errors() {
        let base = ["osmctl", "job", "create", "--name", "n", "--group", G];
        for (extra, says) in [
            (
                &["--operation", "install", "--at", "+1h"][..],
                "needs --package",
            ),
            (
                &[
                    "--operation",
                    "update-all",
                    "--package",
                    "x",
                    "--every",
                    "1d",
                ][..],
                "no --package",
            ),
            (
                &["--operation", "remove", "--package", "x"][..],
                "say when the job runs",
            ),
            (
                &[
                    "--operation",
                    "install",
                    "--package",
                    "x",
                    "--update-type",
                    "security",
                    "--at",
                    "+1h",
                ][..],
                "--update-type goes with",
            ),
            (
                &[
                    "--operation",
                    "update-all",
                    "--at",
                    "+1h",
                    "--time-zone",
                    "Mars/Olympus",
                ][..],
                "IANA",
            ),
            (
                &["--operation", "update-all", "--at", "2001-01-01T00:00:00Z"][..],
                "in the past",
            ),
        ] {
            let args: Vec<&str> = base.iter().chain(extra).copied().collect();
            let err = prepared(&args).unwrap_err();
            assert!(err.contains(says), "{extra:?}: {err}");
        }
        let err =
            prepared(&["osmctl", "job", "update", "ocid1.osmsscheduledjob.oc1..j"]).unwrap_err();
        assert!(err.contains("nothing to change"), "{err}");
        let body = prepared(&[
            "osmctl",
            "job",
            "update",
            "ocid1.osmsscheduledjob.oc1..j",
            "--every",
            "2w",
        ])
        .unwrap();
        assert_eq!(
            body,
            json!({"scheduleType": "RECURRING", "intervalType": "WEEK", "intervalValue": "2"})
        );
    }
}
