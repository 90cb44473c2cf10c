//! `/openapi.json`: an OpenAPI 3.1 document generated from [`OPERATIONS`] (the inventory of
//! every route osmd serves) and the schemas of the wire types in `osm-api`. A test checks that
//! every operation listed here is routed and requires a signature, so the document cannot drift
//! from the router unnoticed.

use std::sync::OnceLock;

use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::{
    ArrayBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, PathsBuilder, Ref, RefOr,
    Required, ResponseBuilder, Schema, Type,
};

/// What an operation answers with on success.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    /// A JSON object of this schema.
    Object(&'static str),
    /// A bare JSON array of this schema.
    List(&'static str),
    /// No body (204).
    Empty,
    /// No body (202); the work request's id in `opc-work-request-id`.
    Accepted,
    /// Plain text.
    Text,
}

#[derive(Debug, Clone, Copy)]
pub struct Operation {
    pub method: &'static str,
    pub path: &'static str,
    pub id: &'static str,
    pub summary: &'static str,
    /// Query parameters: name and whether required.
    pub query: &'static [(&'static str, bool)],
    /// Schema of the JSON request body.
    pub body: Option<&'static str>,
    pub answer: Answer,
}

macro_rules! op {
    ($m:literal $p:literal $id:literal, $summary:literal, [$($q:literal $req:literal),*], $body:expr, $answer:expr) => {
        Operation { method: $m, path: $p, id: $id, summary: $summary, query: &[$(($q, $req)),*], body: $body, answer: $answer }
    };
}

use Answer::*;

pub const OPERATIONS: &[Operation] = &[
    op!("GET" "/20160918/compartments" "ListCompartments", "List the compartments under a parent (or the whole tree)",
        ["compartmentId" true, "page" false, "limit" false, "accessLevel" false, "compartmentIdInSubtree" false, "name" false, "sortBy" false, "sortOrder" false, "lifecycleState" false], None, List("Compartment")),
    op!("POST" "/20160918/compartments" "CreateCompartment", "Create a compartment", [], Some("CreateCompartmentDetails"), Object("Compartment")),
    op!("GET" "/20160918/compartments/{compartmentId}" "GetCompartment", "Get a compartment (or the tenancy)", [], None, Object("Compartment")),
    op!("PUT" "/20160918/compartments/{compartmentId}" "UpdateCompartment", "Update a compartment", [], Some("UpdateCompartmentDetails"), Object("Compartment")),
    op!("DELETE" "/20160918/compartments/{compartmentId}" "DeleteCompartment", "Delete an empty compartment", [], None, Empty),
    op!("GET" "/20160918/tenancies/{tenancyId}" "GetTenancy", "Get the tenancy", [], None, Object("Tenancy")),
    op!("GET" "/20190801/managedInstanceGroups" "ListManagedInstanceGroups", "List managed instance groups",
        ["compartmentId" true, "displayName" false, "limit" false, "page" false, "sortOrder" false, "sortBy" false, "lifecycleState" false, "osFamily" false], None, List("ManagedInstanceGroupSummary")),
    op!("POST" "/20190801/managedInstanceGroups" "CreateManagedInstanceGroup", "Create a managed instance group", [], Some("CreateManagedInstanceGroupDetails"), Object("ManagedInstanceGroup")),
    op!("GET" "/20190801/managedInstanceGroups/{managedInstanceGroupId}" "GetManagedInstanceGroup", "Get a managed instance group", [], None, Object("ManagedInstanceGroup")),
    op!("PUT" "/20190801/managedInstanceGroups/{managedInstanceGroupId}" "UpdateManagedInstanceGroup", "Update a managed instance group", [], Some("UpdateManagedInstanceGroupDetails"), Object("ManagedInstanceGroup")),
    op!("DELETE" "/20190801/managedInstanceGroups/{managedInstanceGroupId}" "DeleteManagedInstanceGroup", "Delete a managed instance group", [], None, Empty),
    op!("POST" "/20190801/managedInstanceGroups/{managedInstanceGroupId}/actions/changeCompartment" "ChangeManagedInstanceGroupCompartment", "Move a group to another compartment", [], Some("ChangeManagedInstanceGroupCompartmentDetails"), Empty),
    op!("POST" "/20190801/managedInstanceGroups/{managedInstanceGroupId}/actions/attachManagedInstance" "AttachManagedInstanceToManagedInstanceGroup", "Add an instance to a group", ["managedInstanceId" true], None, Empty),
    op!("POST" "/20190801/managedInstanceGroups/{managedInstanceGroupId}/actions/detachManagedInstance" "DetachManagedInstanceFromManagedInstanceGroup", "Remove an instance from a group", ["managedInstanceId" true], None, Empty),
    op!("GET" "/20190801/managedInstances" "ListManagedInstances", "List managed instances",
        ["compartmentId" true, "displayName" false, "limit" false, "page" false, "sortOrder" false, "sortBy" false, "osFamily" false], None, List("ManagedInstanceSummary")),
    op!("GET" "/20190801/managedInstances/{managedInstanceId}" "GetManagedInstance", "Get a managed instance", [], None, Object("ManagedInstance")),
    op!("PUT" "/20190801/managedInstances/{managedInstanceId}" "UpdateManagedInstance", "Update a managed instance", [], Some("UpdateManagedInstanceDetails"), Object("ManagedInstance")),
    op!("GET" "/20190801/scheduledJobs" "ListScheduledJobs", "List scheduled jobs",
        ["compartmentId" true, "displayName" false, "managedInstanceId" false, "managedInstanceGroupId" false, "operationType" false, "limit" false, "page" false, "sortOrder" false, "sortBy" false, "lifecycleState" false, "osFamily" false, "isRestricted" false], None, List("ScheduledJobSummary")),
    op!("POST" "/20190801/scheduledJobs" "CreateScheduledJob", "Create a scheduled job", [], Some("CreateScheduledJobDetails"), Object("ScheduledJob")),
    op!("GET" "/20190801/scheduledJobs/upcomingSchedules" "ListUpcomingScheduledJobs", "List jobs due before timeEnd",
        ["compartmentId" true, "displayName" false, "timeEnd" true, "limit" false, "page" false, "sortOrder" false, "sortBy" false, "tagName" false, "tagValue" false, "lifecycleState" false, "osFamily" false], None, List("ScheduledJobSummary")),
    op!("GET" "/20190801/scheduledJobs/{scheduledJobId}" "GetScheduledJob", "Get a scheduled job", [], None, Object("ScheduledJob")),
    op!("PUT" "/20190801/scheduledJobs/{scheduledJobId}" "UpdateScheduledJob", "Update a scheduled job", [], Some("UpdateScheduledJobDetails"), Object("ScheduledJob")),
    op!("DELETE" "/20190801/scheduledJobs/{scheduledJobId}" "DeleteScheduledJob", "Delete a scheduled job (its history stays)", [], None, Empty),
    op!("POST" "/20190801/scheduledJobs/{scheduledJobId}/actions/changeCompartment" "ChangeScheduledJobCompartment", "Move a scheduled job to another compartment", [], Some("ChangeScheduledJobCompartmentDetails"), Empty),
    op!("POST" "/20190801/scheduledJobs/{scheduledJobId}/actions/runNow" "RunScheduledJobNow", "Fire an extra occurrence now (the recurrence does not move)", [], None, Empty),
    op!("POST" "/20190801/scheduledJobs/{scheduledJobId}/actions/skipNextExecution" "SkipNextScheduledJobExecution", "Skip the next occurrence of a recurring job", [], None, Empty),
    op!("GET" "/20190801/workRequests" "ListWorkRequests", "List work requests",
        ["compartmentId" true, "displayName" false, "managedInstanceId" false, "limit" false, "page" false, "sortOrder" false, "sortBy" false, "osFamily" false], None, List("WorkRequestSummary")),
    op!("GET" "/20190801/workRequests/{workRequestId}" "GetWorkRequest", "Get a work request", [], None, Object("WorkRequest")),
    op!("GET" "/20190801/workRequests/{workRequestId}/logs" "ListWorkRequestLogs", "List a work request's log entries", ["limit" false, "page" false, "sortOrder" false, "sortBy" false], None, List("WorkRequestLogEntry")),
    op!("GET" "/20190801/workRequests/{workRequestId}/errors" "ListWorkRequestErrors", "List a work request's errors", ["limit" false, "page" false, "sortOrder" false, "sortBy" false], None, List("WorkRequestError")),
    op!("POST" "/20190801/managedInstances/{managedInstanceId}/actions/packages/install" "InstallPackageOnManagedInstance", "Install a package (asynchronous; see opc-work-request-id)", ["softwarePackageName" true], None, Accepted),
    op!("POST" "/20190801/managedInstances/{managedInstanceId}/actions/packages/remove" "RemovePackageFromManagedInstance", "Remove a package (asynchronous)", ["softwarePackageName" true], None, Accepted),
    op!("POST" "/20190801/managedInstances/{managedInstanceId}/actions/packages/update" "InstallPackageUpdateOnManagedInstance", "Update a package (asynchronous)", ["softwarePackageName" true], None, Accepted),
    op!("POST" "/20190801/managedInstances/{managedInstanceId}/actions/packages/updateAll" "InstallAllPackageUpdatesOnManagedInstance", "Install all updates, or all of one type (asynchronous)", ["updateType" false], None, Accepted),
    op!("POST" "/20190801/managedInstances/{managedInstanceId}/actions/updates/install" "InstallWindowsUpdateOnManagedInstance", "Install a Windows update (asynchronous)", ["windowsUpdateName" true], None, Accepted),
    op!("POST" "/20190801/managedInstances/{managedInstanceId}/actions/updates/installAll" "InstallAllWindowsUpdatesOnManagedInstance", "Install all Windows updates, or all of one type (asynchronous)", ["updateType" false], None, Accepted),
    op!("POST" "/20190801/managedInstanceGroups/{managedInstanceGroupId}/actions/updates/installAll" "InstallAllUpdatesOnManagedInstanceGroup", "Install all updates on every member: a parent work request with one child each (asynchronous)", ["updateType" false], None, Accepted),
    op!("GET" "/20190801/managedInstances/{managedInstanceId}/packages" "ListPackagesInstalledOnManagedInstance", "List the packages installed on an instance (from its agent's inventory)",
        ["displayName" false, "compartmentId" false, "limit" false, "page" false, "sortOrder" false, "sortBy" false], None, List("InstalledPackageSummary")),
    op!("GET" "/20190801/managedInstances/{managedInstanceId}/packages/available" "ListAvailablePackagesForManagedInstance", "List the packages an instance can install",
        ["displayName" false, "compartmentId" false, "limit" false, "page" false, "sortOrder" false, "sortBy" false], None, List("InstallablePackageSummary")),
    op!("GET" "/20190801/managedInstances/{managedInstanceId}/packages/updates" "ListAvailableUpdatesForManagedInstance", "List the updates available to an instance, with their type, CVEs and errata",
        ["displayName" false, "compartmentId" false, "limit" false, "page" false, "sortOrder" false, "sortBy" false], None, List("AvailableUpdateSummary")),
    op!("GET" "/20190801/managedInstances/{managedInstanceId}/updates/available" "ListAvailableWindowsUpdatesForManagedInstance", "List the Windows updates an instance has not installed",
        ["displayName" false, "compartmentId" false, "limit" false, "page" false, "sortOrder" false, "sortBy" false, "isEligibleForInstallation" false], None, List("AvailableWindowsUpdateSummary")),
    op!("GET" "/20190801/managedInstances/{managedInstanceId}/updates/installed" "ListWindowsUpdatesInstalledOnManagedInstance", "List the Windows updates installed on an instance",
        ["displayName" false, "compartmentId" false, "limit" false, "page" false, "sortOrder" false, "sortBy" false], None, List("InstalledWindowsUpdateSummary")),
    op!("GET" "/20190801/updates" "ListWindowsUpdates", "List the Windows updates instances in a compartment (or any the caller reaches) reported",
        ["compartmentId" false, "displayName" false, "limit" false, "page" false, "sortOrder" false, "sortBy" false], None, List("WindowsUpdateSummary")),
    op!("GET" "/20190801/updates/{windowsUpdate}" "GetWindowsUpdate", "Get a Windows update an instance reported", [], None, Object("WindowsUpdate")),
    op!("GET" "/20190801/errata" "ListErrata", "List the errata catalogue: advisories agents reported and imported OSV records",
        ["compartmentId" false, "erratumId" false, "advisoryName" false, "timeIssueDateStart" false, "timeIssueDateEnd" false, "limit" false, "page" false, "sortOrder" false, "sortBy" false], None, List("ErratumSummary")),
    op!("GET" "/20190801/errata/{erratumId}" "GetErratum", "Get an erratum, with the instances it applies to and the packages that fix it", [], None, Object("Erratum")),
    op!("GET" "/20190801/managedInstances/{managedInstanceId}/errata" "ListManagedInstanceErrata", "List the errata an instance's available updates fix",
        ["displayName" false, "compartmentId" false, "limit" false, "page" false, "sortOrder" false, "sortBy" false], None, List("ErratumSummary")),
    op!("DELETE" "/20190801/workRequests/{workRequestId}" "CancelWorkRequest", "Cancel a work request (osm extension): ACCEPTED ends CANCELED, IN_PROGRESS becomes CANCELLING", [], None, Accepted),
    op!("GET" "/osm/v1/installKeys" "ListInstallKeys", "List agent install keys of a compartment (osm extension)", ["compartmentId" true], None, Text),
    op!("POST" "/osm/v1/installKeys" "CreateInstallKey", "Create an agent install key for a compartment; the key is shown once (osm extension)", [], None, Text),
    op!("DELETE" "/osm/v1/installKeys/{installKeyId}" "RevokeInstallKey", "Revoke an agent install key (osm extension)", [], None, Empty),
    op!("POST" "/osm/v1/errata/import" "ImportErrata", "Import OSV advisory records into the errata catalogue and match them against every instance's updates, all or none (osm extension; see docs/errata.md)", [], Some("ImportErrataDetails"), Object("ErrataImportSummary")),
    op!("GET" "/osm/v1/reports/compliance" "GetComplianceReport", "Compliance report (osm extension): which instances of a compartment (compartmentIdInSubtree=true: and its subtree), of a group, or (neither given) of every compartment the caller may read miss updates at or above severity (an update classification, SECURITY by default) that fix one of cve (comma-separated CVE ids; optional), how old each inventory is, and with details=true the updates (413 ReportTooLarge past the server's limit); one store snapshot",
        ["compartmentId" false, "compartmentIdInSubtree" false, "managedInstanceGroupId" false, "details" false, "severity" false, "cve" false], None, Object("ComplianceReport")),
    op!("GET" "/healthz" "Health", "Liveness and store reachability (no signature needed)", [], None, Text),
    op!("GET" "/metrics" "Metrics", "Prometheus metrics", [], None, Text),
    op!("GET" "/openapi.json" "OpenApi", "This document", [], None, Text),
];

fn schema_ref(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

fn path_params(path: &str) -> Vec<String> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(str::to_string)
        .collect()
}

/// The document, built once.
pub fn document() -> &'static OpenApi {
    static DOC: OnceLock<OpenApi> = OnceLock::new();
    DOC.get_or_init(build)
}

pub fn document_json() -> String {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| serde_json::to_string_pretty(document()).expect("document serialises"))
        .clone()
}

fn build() -> OpenApi {
    let mut paths = PathsBuilder::new();
    for op in OPERATIONS {
        let mut builder = OperationBuilder::new()
            .operation_id(Some(op.id))
            .summary(Some(op.summary))
            .tag(if op.path.starts_with("/20160918") {
                "Identity"
            } else if op.path.starts_with("/20190801") {
                "OS Management"
            } else {
                "Operations"
            });
        for name in path_params(op.path) {
            builder = builder.parameter(
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .schema(Some(
                        utoipa::openapi::ObjectBuilder::new().schema_type(Type::String),
                    )),
            );
        }
        for (name, required) in op.query {
            let ty = match *name {
                "limit" => Type::Integer,
                "compartmentIdInSubtree" | "isRestricted" | "details" => Type::Boolean,
                _ => Type::String,
            };
            builder = builder.parameter(
                ParameterBuilder::new()
                    .name(*name)
                    .parameter_in(ParameterIn::Query)
                    .required(if *required {
                        Required::True
                    } else {
                        Required::False
                    })
                    .schema(Some(utoipa::openapi::ObjectBuilder::new().schema_type(ty))),
            );
        }
        if let Some(body) = op.body {
            builder = builder.request_body(Some(
                RequestBodyBuilder::new()
                    .content(
                        "application/json",
                        ContentBuilder::new().schema(Some(schema_ref(body))).build(),
                    )
                    .required(Some(Required::True))
                    .build(),
            ));
        }
        let success = match op.answer {
            Object(name) => ResponseBuilder::new().description("Success").content(
                "application/json",
                ContentBuilder::new().schema(Some(schema_ref(name))).build(),
            ),
            List(name) => ResponseBuilder::new()
                .description("Success; opc-next-page is set when more rows follow")
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(ArrayBuilder::new().items(schema_ref(name)).build()))
                        .build(),
                ),
            Empty => ResponseBuilder::new().description("Done"),
            Accepted => ResponseBuilder::new().description(
                "Accepted; follow the work request named by the opc-work-request-id header",
            ),
            Text => ResponseBuilder::new().description("Success"),
        };
        let status = if matches!(op.answer, Empty) {
            "204"
        } else {
            "200"
        };
        builder = builder.response(status, success.build()).response(
            "default",
            ResponseBuilder::new()
                .description("Error")
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(schema_ref("ApiError")))
                        .build(),
                )
                .build(),
        );
        let method = match op.method {
            "GET" => HttpMethod::Get,
            "POST" => HttpMethod::Post,
            "PUT" => HttpMethod::Put,
            "DELETE" => HttpMethod::Delete,
            other => unreachable!("method {other}"),
        };
        paths = paths.path(op.path, PathItem::new(method, builder.build()));
    }
    let mut components = utoipa::openapi::ComponentsBuilder::new();
    for (name, schema) in osm_api::schemas() {
        components = components.schema(name, schema);
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("osm")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "OCI OS Management (20190801) and Identity (20160918) APIs as served by osmd. Every operation except /healthz needs an OCI HTTP signature.",
                ))
                .build(),
        )
        .paths(paths.build())
        .components(Some(components.build()))
        .build()
}
