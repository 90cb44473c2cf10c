//! Package names and versions from the server, checked against the package manager's own
//! naming rules before anything runs: whatever passes here is safe as one argument of
//! apt-get or dnf (no options, no globs, no shell metacharacters).

use std::fmt;

/// Which naming rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Debian policy §5.6.1 (names) and §5.6.12 (versions).
    Deb,
    /// RPM names and `[epoch:]version[-release]`.
    Rpm,
}

/// A package as the server named it: `name`, `name=version`, and for Debian `name:arch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageSpec {
    pub name: String,
    pub arch: Option<String>,
    pub version: Option<String>,
}

impl PackageSpec {
    /// The argument apt-get (`name[:arch][=version]`) or dnf (`name[-version]`) takes.
    pub fn argument(&self, family: Family) -> String {
        let mut s = self.name.clone();
        if let Some(a) = &self.arch {
            s.push(':');
            s.push_str(a);
        }
        if let Some(v) = &self.version {
            s.push(if family == Family::Deb { '=' } else { '-' });
            s.push_str(v);
        }
        s
    }
}

impl fmt::Display for PackageSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.argument(Family::Deb))
    }
}

/// Parses and checks one package reference; the error says what rule it breaks.
pub fn parse(family: Family, text: &str) -> Result<PackageSpec, String> {
    let (name_arch, version) = match text.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (text, None),
    };
    let (name, arch) = match (family, name_arch.split_once(':')) {
        (Family::Deb, Some((n, a))) => (n, Some(a)),
        _ => (name_arch, None),
    };
    match family {
        Family::Deb => check_deb_name(name)?,
        Family::Rpm => check_rpm_name(name)?,
    }
    if let Some(a) = arch
        && (a.is_empty()
            || !a
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'))
    {
        return Err(format!(
            "{text:?}: architecture {a:?} may only hold lower-case letters, digits and '-'"
        ));
    }
    if let Some(v) = version {
        match family {
            Family::Deb => check_deb_version(v),
            Family::Rpm => check_rpm_version(v),
        }
        .map_err(|e| format!("{text:?}: {e}"))?;
    }
    Ok(PackageSpec {
        name: name.to_string(),
        arch: arch.map(str::to_string),
        version: version.map(str::to_string),
    })
}

fn check_deb_name(name: &str) -> Result<(), String> {
    let b = name.as_bytes();
    let ok = b.len() >= 2
        && b.len() <= 255
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"+-.".contains(&c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a Debian package name (at least two characters: lower-case letters, digits, '+', '-', '.', starting with a letter or digit)"
        ))
    }
}

fn check_deb_version(v: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("version {v:?} is not a Debian version: {why}"));
    let (epoch, rest) = match v.split_once(':') {
        Some((e, r)) => (Some(e), r),
        None => (None, v),
    };
    if let Some(e) = epoch
        && (e.is_empty() || !e.bytes().all(|c| c.is_ascii_digit()))
    {
        return bad("the epoch before ':' must be a number");
    }
    let (upstream, revision) = match rest.rsplit_once('-') {
        Some((u, r)) => (u, Some(r)),
        None => (rest, None),
    };
    if !upstream.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        return bad("the upstream version must start with a digit");
    }
    let upstream_ok = |c: u8| c.is_ascii_alphanumeric() || b".+~-".contains(&c);
    if !upstream.bytes().all(upstream_ok) || upstream.contains(':') {
        return bad("only letters, digits and . + ~ - are allowed");
    }
    if let Some(r) = revision
        && (r.is_empty()
            || !r
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b".+~".contains(&c)))
    {
        return bad("the revision after the last '-' may hold only letters, digits and . + ~");
    }
    Ok(())
}

fn check_rpm_name(name: &str) -> Result<(), String> {
    let b = name.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 255
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || b"._+-".contains(&c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not an RPM package name (letters, digits, '.', '_', '+', '-', starting with a letter, digit or '_')"
        ))
    }
}

fn check_rpm_version(v: &str) -> Result<(), String> {
    let (epoch, rest) = match v.split_once(':') {
        Some((e, r)) => (Some(e), r),
        None => (None, v),
    };
    let epoch_ok = epoch.is_none_or(|e| !e.is_empty() && e.bytes().all(|c| c.is_ascii_digit()));
    let ok = epoch_ok
        && rest
            .as_bytes()
            .first()
            .is_some_and(u8::is_ascii_alphanumeric)
        && rest
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"._+~^-".contains(&c))
        && rest.matches('-').count() <= 1;
    if ok {
        Ok(())
    } else {
        Err(format!(
            "version {v:?} is not an RPM version ([epoch:]version[-release] of letters, digits and . _ + ~ ^)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_names_and_versions() {
        let s = parse(Family::Deb, "libc6:amd64=2.36-9+deb12u4").unwrap();
        assert_eq!(s.name, "libc6");
        assert_eq!(s.arch.as_deref(), Some("amd64"));
        assert_eq!(s.version.as_deref(), Some("2.36-9+deb12u4"));
        assert_eq!(s.argument(Family::Deb), "libc6:amd64=2.36-9+deb12u4");
        for good in [
            "g++",
            "osm-demo",
            "x11-common=1:7.7+23",
            "a0=1.0~rc1-1",
            "tzdata=2024a-0+deb12u1",
        ] {
            parse(Family::Deb, good).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        for bad in [
            "",
            "a",
            "Upper",
            "-o",
            "--force-yes",
            "name;rm -rf /",
            "na me",
            "pkg*",
            "$(id)",
            "pkg=",
            "pkg=abc",
            "pkg=1.0-",
            "pkg=1.0-r;1",
            "pkg=x:1.0",
            "pkg:AMD64",
            "pkg:",
            ".hidden",
        ] {
            assert!(parse(Family::Deb, bad).is_err(), "{bad:?} was accepted");
        }
        let e = parse(Family::Deb, "Bad_Name!").unwrap_err();
        assert!(e.contains("not a Debian package name"), "{e}");
    }

    #[test]
    fn rpm_names_and_versions() {
        let s = parse(Family::Rpm, "kernel-uek=5.15.0-200.el9").unwrap();
        assert_eq!(s.argument(Family::Rpm), "kernel-uek-5.15.0-200.el9");
        for good in [
            "NetworkManager",
            "perl-Data-Dumper",
            "python3.11",
            "glibc-2.34-60.el9.x86_64",
            "_private",
            "bash=1:5.1.8-6.el9",
        ] {
            parse(Family::Rpm, good).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        for bad in [
            "",
            "-y",
            "a b",
            "a;b",
            "pkg*",
            "pkg[1]",
            "pkg=",
            "pkg=-1",
            "pkg=1-2-3",
            "a/b",
        ] {
            assert!(parse(Family::Rpm, bad).is_err(), "{bad:?} was accepted");
        }
    }
}
