#!/usr/bin/env bash
# Captures the outputs of the real rpm and dnf that the dnf parser tests read (the *.txt files
# next to this script). Needs Debian's rpm, dnf and createrepo-c packages.
#
# It builds a small repository with rpmbuild (a security update naming two CVEs, a bugfix
# update, an enhancement of a package with an epoch, an update without advisory, and a package
# that obsoletes another), installs the old versions into an --installroot and runs the
# commands the agent runs.
set -euo pipefail
out=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export HOME=/root LC_ALL=C

cat > "$work/pkg.spec" <<'SPEC'
Name: %{pkgname}
Version: %{pkgver}
Release: 1
Epoch: %{pkgepoch}
Summary: osm-agent test package
License: MIT
BuildArch: %{pkgarch}
%{?pkgobsoletes:Obsoletes: %{pkgobsoletes}}

%description
osm-agent test package.

%install
mkdir -p %{buildroot}/usr/share/%{name}
echo %{version} > %{buildroot}/usr/share/%{name}/version

%files
/usr/share/%{name}/version
SPEC

# name version epoch arch [obsoletes]
while read -r name version epoch arch obsoletes; do
    rpmbuild -bb --quiet --define "_topdir $work/build" --define "_rpmdir $work/repo" \
        --define "pkgname $name" --define "pkgver $version" --define "pkgepoch $epoch" \
        --define "pkgarch $arch" ${obsoletes:+--define "pkgobsoletes $obsoletes"} \
        "$work/pkg.spec"
done <<'LIST'
osm-demo 1.0 0 noarch
osm-demo 1.1 0 noarch
osm-tool 1.0 0 noarch
osm-tool 1.1 0 noarch
osm-lib 2.0 1 x86_64
osm-lib 2.1 1 x86_64
osm-plain 1.0 0 noarch
osm-plain 1.1 0 noarch
osm-old 1.0 0 noarch
osm-new 1.0 0 noarch osm-old < 2
LIST

createrepo_c --quiet "$work/repo"
cat > "$work/updateinfo.xml" <<'XML'
<?xml version="1.0" encoding="UTF-8"?>
<updates>
  <update from="osm@example.invalid" status="final" type="security" version="2">
    <id>OSMSA-2024-0001</id>
    <title>Important: osm-demo security update</title>
    <severity>Important</severity>
    <issued date="2024-01-01 00:00:00"/>
    <description>Fix a buffer overflow in the parser.</description>
    <references>
      <reference href="https://example.invalid/CVE-2024-12345" id="CVE-2024-12345" type="cve" title="CVE-2024-12345"/>
      <reference href="https://example.invalid/CVE-2024-23456" id="CVE-2024-23456" type="cve" title="CVE-2024-23456"/>
    </references>
    <pkglist><collection short="osmtest"><name>osmtest</name>
      <package name="osm-demo" version="1.1" release="1" epoch="0" arch="noarch"><filename>osm-demo-1.1-1.noarch.rpm</filename></package>
    </collection></pkglist>
  </update>
  <update from="osm@example.invalid" status="final" type="bugfix" version="2">
    <id>OSMBA-2024-0002</id>
    <title>osm-tool bug fix update</title>
    <issued date="2024-01-02 00:00:00"/>
    <description>Fix a crash on empty input.</description>
    <references/>
    <pkglist><collection short="osmtest"><name>osmtest</name>
      <package name="osm-tool" version="1.1" release="1" epoch="0" arch="noarch"><filename>osm-tool-1.1-1.noarch.rpm</filename></package>
    </collection></pkglist>
  </update>
  <update from="osm@example.invalid" status="final" type="enhancement" version="2">
    <id>OSMEA-2024-0003</id>
    <title>osm-lib enhancement update</title>
    <issued date="2024-01-03 00:00:00"/>
    <description>Faster lookups.</description>
    <references/>
    <pkglist><collection short="osmtest"><name>osmtest</name>
      <package name="osm-lib" version="2.1" release="1" epoch="1" arch="x86_64"><filename>osm-lib-2.1-1.x86_64.rpm</filename></package>
    </collection></pkglist>
  </update>
</updates>
XML
modifyrepo_c --mdtype=updateinfo "$work/updateinfo.xml" "$work/repo/repodata" >/dev/null

root=$work/root
mkdir -p "$root/etc/yum.repos.d" "$root/etc/dnf"
printf '[main]\ngpgcheck=0\n' > "$root/etc/dnf/dnf.conf"
printf '[osmtest]\nname=osm test repository\nbaseurl=file://%s/repo\ngpgcheck=0\n' "$work" \
    > "$root/etc/yum.repos.d/osmtest.repo"
dnf="dnf --installroot=$root"
$dnf -q -y install osm-demo-1.0 osm-tool-1.0 osm-lib-1:2.0 osm-plain-1.0 osm-old-1.0 >/dev/null 2>&1

rpm --root "$root" -qa --qf '%{NAME}\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\t%{ARCH}\t%{INSTALLTIME}\n' \
    | sort > "$out/rpm-qa.txt"
$dnf -q check-update > "$out/check-update.txt" 2>/dev/null || [ $? = 100 ]
$dnf -q updateinfo list --updates > "$out/updateinfo-list.txt" 2>/dev/null
$dnf -q updateinfo list --updates --with-cve > "$out/updateinfo-list-cve.txt" 2>/dev/null
# The failures the agent classifies (stdout and stderr together, as it streams them).
$dnf -y install osm-nonexistent > "$out/install-missing.txt" 2>&1 || true
echo "captured into $out"
