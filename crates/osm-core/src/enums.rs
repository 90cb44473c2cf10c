//! Enumerations in their exact wire spelling (upper case, case-sensitive).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An enum value that is not one of the allowed spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value {value:?} for {name}; allowed values: {allowed}")]
pub struct UnknownVariant {
    pub name: &'static str,
    pub value: String,
    pub allowed: String,
}

macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident, $label:literal { $($variant:ident => $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $wire)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownVariant;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($wire => Ok($name::$variant),)+
                    _ => Err(UnknownVariant {
                        name: $label,
                        value: s.to_string(),
                        allowed: [$($wire),+].join(", "),
                    }),
                }
            }
        }
    };
}

wire_enum!(
    /// Operating system family of instances, groups, jobs and work requests.
    OsFamily, "osFamily" { Linux => "LINUX", Windows => "WINDOWS", All => "ALL" }
);

wire_enum!(
    /// Lifecycle of OS Management resources (groups, scheduled jobs).
    LifecycleState, "lifecycleState" {
        Creating => "CREATING", Updating => "UPDATING", Active => "ACTIVE",
        Deleting => "DELETING", Deleted => "DELETED", Failed => "FAILED",
    }
);

wire_enum!(
    /// Lifecycle of identity compartments.
    CompartmentState, "lifecycleState" {
        Creating => "CREATING", Active => "ACTIVE", Inactive => "INACTIVE",
        Deleting => "DELETING", Deleted => "DELETED",
    }
);

wire_enum!(
    ScheduleType, "scheduleType" { Onetime => "ONETIME", Recurring => "RECURRING" }
);

wire_enum!(
    IntervalType, "intervalType" { Hour => "HOUR", Day => "DAY", Week => "WEEK", Month => "MONTH" }
);

wire_enum!(
    OperationType, "operationType" {
        Install => "INSTALL", Update => "UPDATE", Remove => "REMOVE", UpdateAll => "UPDATEALL",
        EnableModuleStream => "ENABLEMODULESTREAM", DisableModuleStream => "DISABLEMODULESTREAM",
        SwitchModuleStream => "SWITCHMODULESTREAM",
        InstallModuleStreamProfile => "INSTALLMODULESTREAMPROFILE",
        RemoveModuleStreamProfile => "REMOVEMODULESTREAMPROFILE", Compound => "COMPOUND",
    }
);

wire_enum!(
    /// The `updateType` of update-all operations and scheduled jobs.
    UpdateType, "updateType" {
        Security => "SECURITY", Bugfix => "BUGFIX", Enhancement => "ENHANCEMENT",
        Other => "OTHER", Ksplice => "KSPLICE", All => "ALL",
    }
);

wire_enum!(
    /// Work request states (note the wire spelling `CANCELED` with one L and `CANCELLING` with two).
    WorkRequestStatus, "status" {
        Accepted => "ACCEPTED", InProgress => "IN_PROGRESS", Failed => "FAILED",
        Succeeded => "SUCCEEDED", Cancelling => "CANCELLING", Canceled => "CANCELED",
    }
);

impl WorkRequestStatus {
    /// Terminal states never change again and are the only ones retention may purge.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Canceled)
    }
}

wire_enum!(
    ManagedInstanceStatus, "status" {
        Normal => "NORMAL", Unreachable => "UNREACHABLE", Error => "ERROR", Warning => "WARNING",
    }
);

wire_enum!(
    WorkRequestActionType, "actionType" {
        Created => "CREATED", Updated => "UPDATED", Deleted => "DELETED", Failed => "FAILED",
        InProgress => "IN_PROGRESS", Installed => "INSTALLED", Removed => "REMOVED",
    }
);

wire_enum!(
    /// What an available update fixes (`AvailableUpdateSummary.updateType`, advisory and
    /// Windows update types). Note `BUG` where the update-all actions say `BUGFIX`.
    UpdateClassification, "updateType" {
        Security => "SECURITY", Bug => "BUG", Enhancement => "ENHANCEMENT", Other => "OTHER",
    }
);

wire_enum!(
    /// Whether a Windows update can be installed (`isEligibleForInstallation`).
    Installable, "isEligibleForInstallation" {
        Installable => "INSTALLABLE", NotInstallable => "NOT_INSTALLABLE", Unknown => "UNKNOWN",
    }
);

wire_enum!(SortOrder, "sortOrder" { Asc => "ASC", Desc => "DESC" });

wire_enum!(
    /// Sort keys of OS Management lists.
    SortBy, "sortBy" { TimeCreated => "TIMECREATED", DisplayName => "DISPLAYNAME" }
);

wire_enum!(
    /// Sort keys of the identity compartment list.
    CompartmentSortBy, "sortBy" { TimeCreated => "TIMECREATED", Name => "NAME" }
);

wire_enum!(AccessLevel, "accessLevel" { Any => "ANY", Accessible => "ACCESSIBLE" });

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exact_spelling_only() {
        assert_eq!(
            "CANCELED".parse::<WorkRequestStatus>(),
            Ok(WorkRequestStatus::Canceled)
        );
        let err = "canceled".parse::<WorkRequestStatus>().unwrap_err();
        assert!(err.to_string().contains("CANCELLING"), "{err}");
        assert_eq!(
            serde_json::to_string(&WorkRequestStatus::InProgress).unwrap(),
            "\"IN_PROGRESS\""
        );
    }
}
