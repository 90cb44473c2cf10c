//! The command line: every resource and action of the API, with the checks that run before
//! anything is sent (OCIDs, times, intervals, enumerations).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::parse;

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  the API refused the request (the error's code, message and request id are printed)
  2  usage error: unknown flag, malformed OCID, time or interval (nothing was sent)
  3  the work failed: a waited-for work request ended FAILED or CANCELED
  4  connection, TLS or configuration error (config file, profile, key, CA, endpoint)
  5  gave up waiting (--timeout)";

const EXAMPLES: &str = "\
Examples:
  osmctl --config osm-data/admin/config --ca osm-data/tls/ca.pem compartment list --recursive
  osmctl group create --name web
  osmctl group attach ocid1.osmsmanagedinstancegroup.oc1..aaaa --instance ocid1.instance.oc1..bbbb
  osmctl job create --name nightly --group ocid1.osmsmanagedinstancegroup.oc1..aaaa \\
      --operation update-all --update-type security --every 1d --at 2030-01-01T02:00 --time-zone Europe/Paris
  osmctl group update-all ocid1.osmsmanagedinstancegroup.oc1..aaaa --type security --wait
  osmctl work-request list --all -o json
  osmctl report compliance --details --format html --output-file compliance.html
  osmctl completions bash > /etc/bash_completion.d/osmctl";

#[derive(Debug, Parser)]
#[command(
    name = "osmctl",
    version,
    about = "Operate osm: compartments, managed instances, groups, scheduled jobs, work requests and agent install keys",
    long_about = "Operate osm from a terminal or a script. Requests are signed with an OCI API key \
                  read from an OCI config profile, exactly as the oci SDK signs them.\n\n\
                  The endpoint comes from --endpoint, or from the profile's region when it has the \
                  form @host:port (osmd writes such a profile to <data-dir>/admin/config). The CA \
                  that osmd's certificate chains to (<data-dir>/tls/ca.pem) comes from --ca, OSMCTL_CA, \
                  REQUESTS_CA_BUNDLE or the profile's ca_bundle= (relative to the config file), in \
                  that order; without one, the system's roots are trusted.",
    after_help = EXAMPLES,
    after_long_help = format!("{EXAMPLES}\n\n{EXIT_CODES}"),
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// OCI config file [default: ~/.oci/config]
    #[arg(long, global = true, env = "OSMCTL_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Profile of the config file
    #[arg(long, global = true, env = "OSMCTL_PROFILE", default_value = "DEFAULT")]
    pub profile: String,
    /// osmd's URL, e.g. https://osm.example.com:9443 [default: the profile's region=@host:port]
    #[arg(long, global = true, env = "OSMCTL_ENDPOINT", value_name = "URL")]
    pub endpoint: Option<String>,
    /// CA bundle to trust (PEM) [default: OSMCTL_CA, REQUESTS_CA_BUNDLE, the profile's ca_bundle=, system roots]
    #[arg(long, global = true, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// How to print results: a table for people, or exactly the API's JSON
    #[arg(short, long, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compartments (the tenancy is the root)
    #[command(subcommand, visible_alias = "compartments")]
    Compartment(CompartmentCmd),
    /// Managed instances and actions on them
    #[command(subcommand, visible_aliases = ["instances", "mi"])]
    Instance(InstanceCmd),
    /// Managed instance groups and actions on them
    #[command(subcommand, visible_aliases = ["groups"])]
    Group(GroupCmd),
    /// Scheduled jobs
    #[command(subcommand, visible_aliases = ["jobs"])]
    Job(JobCmd),
    /// Work requests: follow, inspect and cancel asynchronous work
    #[command(subcommand, visible_aliases = ["work-requests", "wr"])]
    WorkRequest(WorkRequestCmd),
    /// Agent install keys (an osm extension)
    #[command(subcommand, visible_aliases = ["install-keys"])]
    InstallKey(InstallKeyCmd),
    /// Errata: advisories agents report and imported OSV records, and the instances they apply to
    #[command(subcommand, visible_aliases = ["erratum"])]
    Errata(ErrataCmd),
    /// Reports computed by osmd: compliance (which instances miss security updates)
    #[command(subcommand, visible_aliases = ["reports"])]
    Report(crate::report::ReportCmd),
    /// Print a shell completion script
    #[command(
        after_help = "Example:\n  osmctl completions bash > /etc/bash_completion.d/osmctl\n  osmctl completions zsh > \"${fpath[1]}/_osmctl\""
    )]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Wire enumerations as command-line values (case-insensitive; the value is the wire spelling).
macro_rules! wire_values {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $wire:literal $(| $alias:literal)*),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
        pub enum $name {
            $(#[value(name = $wire $(, alias = $alias)*)] $variant),+
        }

        impl $name {
            pub fn wire(self) -> &'static str {
                match self { $(Self::$variant => $wire),+ }
            }
        }
    };
}

wire_values!(OsFamily { Linux = "LINUX", Windows = "WINDOWS", All = "ALL" });
wire_values!(UpdateType {
    Security = "SECURITY",
    Bugfix = "BUGFIX",
    Enhancement = "ENHANCEMENT",
    Other = "OTHER",
    Ksplice = "KSPLICE",
    All = "ALL",
});
wire_values!(Operation {
    Install = "INSTALL",
    Update = "UPDATE",
    Remove = "REMOVE",
    UpdateAll = "UPDATEALL" | "update-all",
});
wire_values!(LifecycleState {
    Creating = "CREATING",
    Updating = "UPDATING",
    Active = "ACTIVE",
    Deleting = "DELETING",
    Deleted = "DELETED",
    Failed = "FAILED",
});
wire_values!(CompartmentState {
    Creating = "CREATING",
    Active = "ACTIVE",
    Inactive = "INACTIVE",
    Deleting = "DELETING",
    Deleted = "DELETED",
});
wire_values!(SortOrder { Asc = "ASC", Desc = "DESC" });

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SortBy {
    /// When the resource was created (newest first unless --sort-order asc)
    TimeCreated,
    /// The name (A→Z unless --sort-order desc)
    Name,
}

/// Paging and sorting of a list.
#[derive(Debug, Args)]
pub struct Paging {
    /// Follow every page (`opc-next-page`) and print all rows
    #[arg(long, conflicts_with = "page")]
    pub all: bool,
    /// Rows per page (without --all: one page, the next page's token on stderr)
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: Option<u32>,
    /// Page token printed by an earlier call
    #[arg(long)]
    pub page: Option<String>,
    #[arg(long, value_enum, ignore_case = true)]
    pub sort_by: Option<SortBy>,
    #[arg(long, value_enum, ignore_case = true)]
    pub sort_order: Option<SortOrder>,
}

/// Compartment a command works in; the tenancy (root) by default.
#[derive(Debug, Args)]
pub struct InCompartment {
    /// Compartment OCID [default: the profile's tenancy]
    #[arg(short = 'c', long, value_parser = parse::compartment_id)]
    pub compartment_id: Option<String>,
}

#[derive(Debug, Args)]
pub struct IfMatch {
    /// Only if the resource still has this etag (optimistic concurrency)
    #[arg(long, value_name = "ETAG")]
    pub if_match: Option<String>,
}

#[derive(Debug, Args)]
pub struct Wait {
    /// Follow the work request until it ends (exit 3 unless it SUCCEEDED)
    #[arg(long)]
    pub wait: bool,
    #[command(flatten)]
    pub options: WaitOptions,
}

#[derive(Debug, Args)]
pub struct WaitOptions {
    /// Give up waiting after this long (exit 5), e.g. 10m
    #[arg(long, value_parser = parse::duration, value_name = "DURATION")]
    pub timeout: Option<std::time::Duration>,
    /// How often to look
    #[arg(long, value_parser = parse::duration, default_value = "1s", value_name = "DURATION")]
    pub interval: std::time::Duration,
}

// ---------------------------------------------------------------------------------------------
// Compartments

#[derive(Debug, Subcommand)]
pub enum CompartmentCmd {
    /// List the compartments under one (the tenancy by default)
    #[command(
        after_help = "Examples:\n  osmctl compartment list --recursive\n  osmctl compartment list -c ocid1.compartment.oc1..aaaa --all -o json"
    )]
    List {
        #[command(flatten)]
        parent: InCompartment,
        /// The whole subtree, not only direct children
        #[arg(short = 'R', long)]
        recursive: bool,
        #[arg(long)]
        name: Option<String>,
        #[arg(long, value_enum, ignore_case = true)]
        lifecycle_state: Option<CompartmentState>,
        #[command(flatten)]
        paging: Paging,
    },
    /// Show a compartment (or the tenancy)
    Get {
        #[arg(value_parser = parse::compartment_id)]
        id: String,
    },
    /// Create a compartment
    #[command(
        after_help = "Example:\n  osmctl compartment create --name prod --description \"production hosts\""
    )]
    Create {
        /// Parent compartment [default: the tenancy]
        #[arg(short = 'c', long = "parent", value_parser = parse::compartment_id)]
        parent: Option<String>,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        /// Free-form tag, key=value (repeatable)
        #[arg(long = "tag", value_parser = parse::tag)]
        tags: Vec<(String, String)>,
    },
    /// Change a compartment's name, description or tags
    Update {
        #[arg(value_parser = parse::compartment_id)]
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// Free-form tags, key=value (repeatable; replaces all tags)
        #[arg(long = "tag", value_parser = parse::tag)]
        tags: Vec<(String, String)>,
        #[command(flatten)]
        if_match: IfMatch,
    },
    /// Delete an empty compartment
    Delete {
        #[arg(value_parser = parse::compartment_id)]
        id: String,
        #[command(flatten)]
        if_match: IfMatch,
    },
}

// ---------------------------------------------------------------------------------------------
// Managed instances

#[derive(Debug, Subcommand)]
pub enum InstanceCmd {
    /// List managed instances
    #[command(after_help = "Example:\n  osmctl instance list --os-family linux --all")]
    List {
        #[command(flatten)]
        compartment: InCompartment,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long, value_enum, ignore_case = true)]
        os_family: Option<OsFamily>,
        #[command(flatten)]
        paging: Paging,
    },
    /// Show a managed instance
    Get {
        #[arg(value_parser = parse::instance_id)]
        id: String,
    },
    /// Change an instance's notification topic or data-collection consent
    Update {
        #[arg(value_parser = parse::instance_id)]
        id: String,
        #[arg(long)]
        notification_topic_id: Option<String>,
        #[arg(long)]
        data_collection_authorized: Option<bool>,
        #[command(flatten)]
        if_match: IfMatch,
    },
    /// Install a package (asynchronous: prints the work request)
    #[command(
        after_help = "Example:\n  osmctl instance install ocid1.instance.oc1..aaaa --package htop --wait"
    )]
    Install {
        #[arg(value_parser = parse::instance_id)]
        id: String,
        #[arg(long)]
        package: String,
        #[command(flatten)]
        wait: Wait,
    },
    /// Remove a package (asynchronous)
    Remove {
        #[arg(value_parser = parse::instance_id)]
        id: String,
        #[arg(long)]
        package: String,
        #[command(flatten)]
        wait: Wait,
    },
    /// Update one package (asynchronous)
    UpdatePackage {
        #[arg(value_parser = parse::instance_id)]
        id: String,
        #[arg(long)]
        package: String,
        #[command(flatten)]
        wait: Wait,
    },
    /// Install all available updates, or all of one type (asynchronous)
    #[command(
        after_help = "Example:\n  osmctl instance update-all ocid1.instance.oc1..aaaa --type security --wait"
    )]
    UpdateAll {
        #[arg(value_parser = parse::instance_id)]
        id: String,
        /// Only updates of this type [default: all]
        #[arg(long = "type", value_enum, ignore_case = true)]
        update_type: Option<UpdateType>,
        #[command(flatten)]
        wait: Wait,
    },
    /// Install one Windows update (asynchronous)
    InstallWindowsUpdate {
        #[arg(value_parser = parse::instance_id)]
        id: String,
        #[arg(long)]
        update: String,
        #[command(flatten)]
        wait: Wait,
    },
    /// Install all Windows updates, or all of one type (asynchronous)
    InstallAllWindowsUpdates {
        #[arg(value_parser = parse::instance_id)]
        id: String,
        #[arg(long = "type", value_enum, ignore_case = true)]
        update_type: Option<UpdateType>,
        #[command(flatten)]
        wait: Wait,
    },
}

// ---------------------------------------------------------------------------------------------
// Groups

#[derive(Debug, Subcommand)]
pub enum GroupCmd {
    /// List managed instance groups
    List {
        #[command(flatten)]
        compartment: InCompartment,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long, value_enum, ignore_case = true)]
        lifecycle_state: Option<LifecycleState>,
        #[arg(long, value_enum, ignore_case = true)]
        os_family: Option<OsFamily>,
        #[command(flatten)]
        paging: Paging,
    },
    /// Show a group and its members
    Get {
        #[arg(value_parser = parse::group_id)]
        id: String,
    },
    /// Create a group
    #[command(
        after_help = "Example:\n  osmctl group create --name web --description \"front ends\""
    )]
    Create {
        #[command(flatten)]
        compartment: InCompartment,
        #[arg(long)]
        name: String,
        #[arg(long)]
        description: Option<String>,
        #[arg(long, value_enum, ignore_case = true)]
        os_family: Option<OsFamily>,
        /// Free-form tag, key=value (repeatable)
        #[arg(long = "tag", value_parser = parse::tag)]
        tags: Vec<(String, String)>,
    },
    /// Change a group's name, description or tags
    Update {
        #[arg(value_parser = parse::group_id)]
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// Free-form tags, key=value (repeatable; replaces all tags)
        #[arg(long = "tag", value_parser = parse::tag)]
        tags: Vec<(String, String)>,
        #[command(flatten)]
        if_match: IfMatch,
    },
    /// Delete a group (its instances stay)
    Delete {
        #[arg(value_parser = parse::group_id)]
        id: String,
        #[command(flatten)]
        if_match: IfMatch,
    },
    /// Move a group to another compartment
    Move {
        #[arg(value_parser = parse::group_id)]
        id: String,
        /// The compartment to move it to
        #[arg(long, value_parser = parse::compartment_id)]
        to: String,
        #[command(flatten)]
        if_match: IfMatch,
    },
    /// Add instances to a group
    #[command(
        after_help = "Example:\n  osmctl group attach ocid1.osmsmanagedinstancegroup.oc1..aaaa --instance ocid1.instance.oc1..b1 --instance ocid1.instance.oc1..b2"
    )]
    Attach {
        #[arg(value_parser = parse::group_id)]
        id: String,
        /// Instance to add (repeatable)
        #[arg(long = "instance", required = true, value_parser = parse::instance_id)]
        instances: Vec<String>,
    },
    /// Remove instances from a group
    Detach {
        #[arg(value_parser = parse::group_id)]
        id: String,
        /// Instance to remove (repeatable)
        #[arg(long = "instance", required = true, value_parser = parse::instance_id)]
        instances: Vec<String>,
    },
    /// Install all updates (or all of one type) on every member: one parent work request with a
    /// child per instance
    #[command(
        after_help = "Example:\n  osmctl group update-all ocid1.osmsmanagedinstancegroup.oc1..aaaa --type security --wait"
    )]
    UpdateAll {
        #[arg(value_parser = parse::group_id)]
        id: String,
        #[arg(long = "type", value_enum, ignore_case = true)]
        update_type: Option<UpdateType>,
        #[command(flatten)]
        wait: Wait,
    },
}

// ---------------------------------------------------------------------------------------------
// Scheduled jobs

/// When a job runs.
#[derive(Debug, Args)]
pub struct Schedule {
    /// First (or only) run: an RFC 3339 time, a local time read in --time-zone
    /// (2030-01-02T02:00), or an offset from now (+30m, +2h, +1d)
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// Repeat every N hours, days, weeks or months: 6h, 1d, 2w, 1mo (without --at, the first
    /// run is one interval from now)
    #[arg(long, value_parser = parse::every, value_name = "INTERVAL")]
    pub every: Option<parse::Every>,
    /// IANA time zone the recurrence (and a local --at) is computed in [default: UTC]
    #[arg(long, value_name = "ZONE")]
    pub time_zone: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum JobCmd {
    /// List scheduled jobs
    List {
        #[command(flatten)]
        compartment: InCompartment,
        #[arg(long)]
        display_name: Option<String>,
        /// Jobs that target this instance
        #[arg(long, value_parser = parse::instance_id)]
        instance: Option<String>,
        /// Jobs that target this group
        #[arg(long, value_parser = parse::group_id)]
        group: Option<String>,
        #[arg(long, value_enum, ignore_case = true)]
        operation: Option<Operation>,
        #[arg(long, value_enum, ignore_case = true)]
        lifecycle_state: Option<LifecycleState>,
        #[arg(long, value_enum, ignore_case = true)]
        os_family: Option<OsFamily>,
        #[command(flatten)]
        paging: Paging,
    },
    /// Show a job and its work requests
    Get {
        #[arg(value_parser = parse::job_id)]
        id: String,
    },
    /// Create a job: once (--at) or on a recurrence (--every)
    #[command(after_help = "Examples:\n  \
        osmctl job create --name nightly --group ocid1.osmsmanagedinstancegroup.oc1..aaaa \\\n      \
        --operation update-all --update-type security --every 1d --at 2030-01-01T02:00 --time-zone Europe/Paris\n  \
        osmctl job create --name htop --instance ocid1.instance.oc1..aaaa --operation install --package htop --at +30m")]
    Create {
        #[command(flatten)]
        compartment: InCompartment,
        #[arg(long)]
        name: String,
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        schedule: Schedule,
        /// Target instance (repeatable)
        #[arg(long = "instance", value_parser = parse::instance_id, conflicts_with = "groups", required_unless_present = "groups")]
        instances: Vec<String>,
        /// Target group, expanded when the job fires (repeatable)
        #[arg(long = "group", value_parser = parse::group_id)]
        groups: Vec<String>,
        #[arg(long, value_enum, ignore_case = true)]
        operation: Operation,
        /// Package for install, update or remove (repeatable)
        #[arg(long = "package")]
        packages: Vec<String>,
        /// Windows update for install (repeatable)
        #[arg(long = "windows-update")]
        windows_updates: Vec<String>,
        /// Which updates update-all installs [default: all]
        #[arg(long, value_enum, ignore_case = true)]
        update_type: Option<UpdateType>,
        #[arg(long, value_enum, ignore_case = true)]
        os_family: Option<OsFamily>,
        /// Free-form tag, key=value (repeatable)
        #[arg(long = "tag", value_parser = parse::tag)]
        tags: Vec<(String, String)>,
    },
    /// Change a job: name, schedule, operation, packages
    #[command(
        after_help = "Examples:\n  osmctl job update ocid1.osmsscheduledjob.oc1..aaaa --every 2w\n  osmctl job update ocid1.osmsscheduledjob.oc1..aaaa --once --at +1h"
    )]
    Update {
        #[arg(value_parser = parse::job_id)]
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        schedule: Schedule,
        /// Make the job run once (at its next time) instead of repeating
        #[arg(long, conflicts_with = "every")]
        once: bool,
        #[arg(long, value_enum, ignore_case = true)]
        operation: Option<Operation>,
        /// Packages (repeatable; replaces the job's list)
        #[arg(long = "package")]
        packages: Vec<String>,
        #[arg(long, value_enum, ignore_case = true)]
        update_type: Option<UpdateType>,
        /// Free-form tags, key=value (repeatable; replaces all tags)
        #[arg(long = "tag", value_parser = parse::tag)]
        tags: Vec<(String, String)>,
        #[command(flatten)]
        if_match: IfMatch,
    },
    /// Delete a job (its history stays)
    Delete {
        #[arg(value_parser = parse::job_id)]
        id: String,
        #[command(flatten)]
        if_match: IfMatch,
    },
    /// Move a job to another compartment
    Move {
        #[arg(value_parser = parse::job_id)]
        id: String,
        #[arg(long, value_parser = parse::compartment_id)]
        to: String,
        #[command(flatten)]
        if_match: IfMatch,
    },
    /// Fire an extra occurrence now (a recurrence keeps its times)
    RunNow {
        #[arg(value_parser = parse::job_id)]
        id: String,
        #[command(flatten)]
        if_match: IfMatch,
    },
    /// Skip the next occurrence of a recurring job
    SkipNext {
        #[arg(value_parser = parse::job_id)]
        id: String,
        #[command(flatten)]
        if_match: IfMatch,
    },
    /// Jobs due before a time
    #[command(after_help = "Example:\n  osmctl job upcoming --before +24h")]
    Upcoming {
        #[command(flatten)]
        compartment: InCompartment,
        /// An RFC 3339 time or an offset from now
        #[arg(long, default_value = "+7d", value_name = "TIME")]
        before: String,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long, value_enum, ignore_case = true)]
        os_family: Option<OsFamily>,
        #[command(flatten)]
        paging: Paging,
    },
}

// ---------------------------------------------------------------------------------------------
// Work requests

#[derive(Debug, Subcommand)]
pub enum WorkRequestCmd {
    /// List work requests
    #[command(
        after_help = "Example:\n  osmctl work-request list --instance ocid1.instance.oc1..aaaa --all -o json"
    )]
    List {
        #[command(flatten)]
        compartment: InCompartment,
        #[arg(long)]
        display_name: Option<String>,
        /// Work requests of this instance
        #[arg(long, value_parser = parse::instance_id)]
        instance: Option<String>,
        #[arg(long, value_enum, ignore_case = true)]
        os_family: Option<OsFamily>,
        #[command(flatten)]
        paging: Paging,
    },
    /// Show a work request
    Get {
        #[arg(value_parser = parse::work_request_id)]
        id: String,
    },
    /// A work request's log
    Logs {
        #[arg(value_parser = parse::work_request_id)]
        id: String,
        #[command(flatten)]
        paging: Paging,
    },
    /// A work request's errors
    Errors {
        #[arg(value_parser = parse::work_request_id)]
        id: String,
        #[command(flatten)]
        paging: Paging,
    },
    /// Cancel a work request: ACCEPTED ends CANCELED at once, IN_PROGRESS becomes CANCELLING
    Cancel {
        #[arg(value_parser = parse::work_request_id)]
        id: String,
        #[command(flatten)]
        wait: Wait,
    },
    /// Follow a work request (and the children of a group's) with a progress bar until it
    /// ends; exit 0 when it SUCCEEDED, 3 when it FAILED or was CANCELED
    #[command(
        after_help = "Example:\n  osmctl work-request wait ocid1.osmsworkrequest.oc1..aaaa --timeout 30m"
    )]
    Wait {
        #[arg(value_parser = parse::work_request_id)]
        id: String,
        #[command(flatten)]
        options: WaitOptions,
    },
}

// ---------------------------------------------------------------------------------------------
// Install keys

#[derive(Debug, Subcommand)]
pub enum InstallKeyCmd {
    /// Create an install key agents enrol with into a compartment; the key is shown once
    #[command(
        after_help = "Example:\n  osmctl install-key create -c ocid1.compartment.oc1..aaaa --name \"web hosts\""
    )]
    Create {
        #[command(flatten)]
        compartment: InCompartment,
        #[arg(long)]
        name: Option<String>,
    },
    /// List a compartment's install keys (never the keys themselves)
    List {
        #[command(flatten)]
        compartment: InCompartment,
    },
    /// Revoke an install key (enrolled agents keep working)
    Revoke {
        #[arg(value_parser = parse::install_key_id)]
        id: String,
    },
}

// ---------------------------------------------------------------------------------------------
// Errata

#[derive(Debug, Subcommand)]
pub enum ErrataCmd {
    /// List errata (the whole catalogue, or those that apply to one instance); --sort-by
    /// time-created orders by issue date
    #[command(
        after_help = "Examples:\n  osmctl errata list --advisory-name DSA-5678-1\n  osmctl errata list --issued-after 2024-01-01T00:00 --all -o json\n  osmctl errata list --instance ocid1.instance.oc1..aaaa"
    )]
    List {
        #[command(flatten)]
        compartment: InCompartment,
        /// Only the errata that apply to this instance (its available updates fix them)
        #[arg(long, value_parser = parse::instance_id, conflicts_with_all = ["erratum_id", "issued_after", "issued_before"])]
        instance: Option<String>,
        #[arg(long, value_parser = parse::erratum_id)]
        erratum_id: Option<String>,
        /// Exact advisory name
        #[arg(long)]
        advisory_name: Option<String>,
        /// Issued at or after this time (RFC 3339, YYYY-MM-DDTHH:MM in UTC, or YYYY-MM-DD)
        #[arg(long, value_name = "TIME", value_parser = parse::instant)]
        issued_after: Option<jiff::Timestamp>,
        /// Issued at or before this time
        #[arg(long, value_name = "TIME", value_parser = parse::instant)]
        issued_before: Option<jiff::Timestamp>,
        #[command(flatten)]
        paging: Paging,
    },
    /// Show an erratum: its CVEs, the instances it applies to, the packages that fix it
    Get {
        #[arg(value_parser = parse::erratum_id)]
        id: String,
    },
    /// Import a directory of OSV advisory files (every *.json in it, one record each): all are
    /// checked first and nothing is sent when one is bad; osmd applies them all or none
    #[command(
        after_help = "Example:\n  osmctl errata import ./debian-osv\n\nA bad file stops the import before anything is sent, with its position:\n  osmctl: ./debian-osv/DSA-5678-1.json:12:31: affected[0].ranges[0].events[1]: \"1.2 beta\" is not a valid Debian:12 version"
    )]
    Import {
        /// Directory of OSV JSON files
        dir: PathBuf,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn wire_values_are_the_api_spellings() {
        for v in UpdateType::value_variants() {
            v.wire().parse::<osm_core::UpdateType>().unwrap();
        }
        for v in Operation::value_variants() {
            v.wire().parse::<osm_core::OperationType>().unwrap();
        }
        for v in OsFamily::value_variants() {
            v.wire().parse::<osm_core::OsFamily>().unwrap();
        }
        for v in LifecycleState::value_variants() {
            v.wire().parse::<osm_core::LifecycleState>().unwrap();
        }
        for v in CompartmentState::value_variants() {
            v.wire()
                .parse::<osm_core::enums::CompartmentState>()
                .unwrap();
        }
        for v in SortOrder::value_variants() {
            v.wire().parse::<osm_core::enums::SortOrder>().unwrap();
        }
    }
}
