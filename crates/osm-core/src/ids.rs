//! OCIDs: `ocid1.<type>.<realm>.[region].<unique>`.
//!
//! osm mints ids with an empty region part (`ocid1.compartment.oc1..aaaaaaaa…`), the way
//! OCI writes tenancy and compartment ids; clients treat them as opaque strings.

use rand::RngExt;

/// The resource types osm mints ids for, with their OCID type segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    Tenancy,
    Compartment,
    User,
    Group,
    ManagedInstance,
    ManagedInstanceGroup,
    ScheduledJob,
    WorkRequest,
    InstallKey,
    Erratum,
}

impl ResourceKind {
    pub fn type_segment(self) -> &'static str {
        match self {
            Self::Tenancy => "tenancy",
            Self::Compartment => "compartment",
            Self::User => "user",
            Self::Group => "group",
            Self::ManagedInstance => "instance",
            Self::ManagedInstanceGroup => "osmsmanagedinstancegroup",
            Self::ScheduledJob => "osmsscheduledjob",
            Self::WorkRequest => "osmsworkrequest",
            Self::InstallKey => "osmsinstallkey",
            Self::Erratum => "osmserratum",
        }
    }
}

const REALM: &str = "oc1";
const BASE32: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";

/// A fresh OCID of the given kind (60-character unique part, as OCI's). The unique part starts
/// with the creation time in microseconds (11 base32 characters, so ids sort by creation) and
/// ends with 205 random bits: rows keyed by id are then written near each other in every
/// b-tree (a random key would dirty a page of its own per row), and ids stay unguessable.
/// Only storage locality depends on the clock; nothing reads the time back.
pub fn new_ocid(kind: ResourceKind) -> String {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64);
    ocid_at(kind, micros, &mut rand::rng())
}

/// Base32 characters of the time prefix: 55 bits of microseconds, enough until the year 3111.
const TIME_CHARS: u32 = 11;
/// The time prefix's digits, in ASCII order so that ids compare as their times do.
const SORTED_BASE32: &[u8] = b"234567abcdefghijklmnopqrstuvwxyz";

/// [`new_ocid`] for a given creation time.
fn ocid_at(kind: ResourceKind, micros: u64, rng: &mut impl rand::Rng) -> String {
    let time = (0..TIME_CHARS)
        .rev()
        .map(|i| SORTED_BASE32[((micros >> (5 * i)) & 31) as usize] as char);
    let random = (0..52 - TIME_CHARS).map(|_| BASE32[rng.random_range(0..BASE32.len())] as char);
    let unique: String = time.chain(random).collect();
    format!("ocid1.{}.{REALM}..aaaaaaaa{unique}", kind.type_segment())
}

/// Why a string is not an acceptable OCID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OcidError {
    #[error("{field} must not be empty")]
    Empty { field: &'static str },
    #[error("{field} is not a valid OCID: {value:?}")]
    Malformed { field: &'static str, value: String },
    #[error("{field} must be the OCID of a {expected}, got {value:?}")]
    WrongKind {
        field: &'static str,
        expected: &'static str,
        value: String,
    },
}

/// Checks the OCID syntax: `ocid1`, a type, a realm, an optional region and future-use parts, and
/// a unique part, separated by dots, each made of `[a-z0-9_-]`.
pub fn check_ocid(field: &'static str, value: &str) -> Result<(), OcidError> {
    if value.trim().is_empty() {
        return Err(OcidError::Empty { field });
    }
    let malformed = || OcidError::Malformed {
        field,
        value: truncate(value),
    };
    if value.len() > 255 {
        return Err(malformed());
    }
    let parts: Vec<&str> = value.split('.').collect();
    if parts.len() < 5 || parts[0] != "ocid1" {
        return Err(malformed());
    }
    let segment_ok = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    };
    let (first, rest) = (&parts[1..3], &parts[3..]);
    if first.iter().any(|s| s.is_empty() || !segment_ok(s))
        || rest.iter().any(|s| !segment_ok(s))
        || parts.last().is_none_or(|s| s.is_empty())
    {
        return Err(malformed());
    }
    Ok(())
}

/// Like [`check_ocid`], and the type segment must be `kind`'s.
pub fn check_ocid_of(
    field: &'static str,
    value: &str,
    kind: ResourceKind,
) -> Result<(), OcidError> {
    check_ocid(field, value)?;
    if value.split('.').nth(1) != Some(kind.type_segment()) {
        return Err(OcidError::WrongKind {
            field,
            expected: kind.type_segment(),
            value: truncate(value),
        });
    }
    Ok(())
}

/// The type segment of a syntactically valid OCID.
pub fn type_segment(value: &str) -> Option<&str> {
    value.split('.').nth(1)
}

fn truncate(value: &str) -> String {
    value.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_ids_are_valid_and_unique() {
        let a = new_ocid(ResourceKind::Tenancy);
        let b = new_ocid(ResourceKind::Tenancy);
        assert!(a.starts_with("ocid1.tenancy.oc1..aaaaaaaa"), "{a}");
        assert_eq!(a.len(), "ocid1.tenancy.oc1..".len() + 60);
        assert_ne!(a, b);
        check_ocid_of("id", &a, ResourceKind::Tenancy).unwrap();
    }

    #[test]
    fn later_ids_sort_after_earlier_ones() {
        let mut rng = rand::rng();
        let times = [
            0,
            1,
            31,
            32,
            1_000_000,
            1_780_000_000_000_000,
            (1u64 << 55) - 1,
        ];
        let ids: Vec<String> = times
            .iter()
            .map(|&t| ocid_at(ResourceKind::WorkRequest, t, &mut rng))
            .collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        for id in &ids {
            check_ocid_of("id", id, ResourceKind::WorkRequest).unwrap();
            assert_eq!(id.len(), "ocid1.osmsworkrequest.oc1..".len() + 60);
        }
    }

    #[test]
    fn accepts_regional_and_rejects_garbage() {
        check_ocid("id", "ocid1.instance.oc1.iad.aaaa").unwrap();
        for bad in [
            "",
            " ",
            "foo",
            "ocid1.instance",
            "ocid2.a.b..c",
            "ocid1.A.oc1..x",
            "ocid1.x.oc1..",
            "ocid1..oc1..x",
            "ocid1.x.oc1..a b",
        ] {
            assert!(check_ocid("id", bad).is_err(), "{bad:?} accepted");
        }
        assert!(matches!(
            check_ocid_of("id", "ocid1.compartment.oc1..x", ResourceKind::User),
            Err(OcidError::WrongKind { .. })
        ));
    }
}
