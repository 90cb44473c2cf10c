"""Oracle's sample patch-compliance script (`../shared/clients/compliance_report.py`), run
unmodified against osmd and simulated instances in a compartment tree, in its four modes:
plain, `--show-details`, `-R` (recursive over sub-compartments, from the tenancy) and `-g` (a
group). What it
prints — the instance count, the vulnerable instances, their security updates and CVEs — is
checked against what the SDK says about the same instances.

The expected report is computed once per mode by `sdk_report`; a report made another way (for
instance by `osmctl report compliance`) can be compared with the same value."""
import dataclasses
import os
import pathlib
import re
import subprocess
import sys

import oci
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = REPO.parent / "shared" / "clients" / "compliance_report.py"
M = oci.os_management.models


@dataclasses.dataclass
class Report:
    total: int
    # instance id -> (display name, [(security update display name, [CVE ids])]) for every
    # instance that misses at least one security update
    vulnerable: dict


@dataclasses.dataclass
class Tree:
    root: str
    apps: str
    deep: str
    db: str
    fleets: dict
    group: object

    def instances(self, *names):
        return [i for n in names for i in self.fleets[n].instances]


@pytest.fixture(scope="module")
def tree(new_compartment, sim_fleet, osms):
    """root (2 up-to-date hosts) ── apps (3 vulnerable hosts with 14 updates each, more than the
    script's page of 10) ── apps/deep (1 vulnerable host); root ── db (2 Windows hosts, each
    missing a security update). A (Linux) group in root holds one host from each of root, apps and
    apps/deep."""
    root = new_compartment("compliance")
    apps = new_compartment("apps", parent=root)
    deep = new_compartment("deep", parent=apps)
    db = new_compartment("db", parent=root)
    fleets = {
        "root": sim_fleet(root, 2, security_ratio=0, updates_per_instance=5),
        "apps": sim_fleet(apps, 3, security_ratio=1, updates_per_instance=14),
        "deep": sim_fleet(deep, 1, security_ratio=1, updates_per_instance=3),
        "db": sim_fleet(db, 2, security_ratio=1, windows_ratio=1, updates_per_instance=4),
    }
    group = osms.create_managed_instance_group(M.CreateManagedInstanceGroupDetails(
        compartment_id=root, display_name="compliance-mixed")).data
    for name in ("root", "apps", "deep"):
        osms.attach_managed_instance_to_managed_instance_group(group.id, fleets[name].ids[0])
    return Tree(root, apps, deep, db, fleets, group)


def sdk_report(osms, instances):
    """The report the script should print for these instances, from the SDK's own answers:
    every available update (one unpaged call), counted when its type is SECURITY."""
    vulnerable = {}
    for summary in instances:
        mi = osms.get_managed_instance(summary.id).data
        if mi.os_family == "WINDOWS":
            updates = osms.list_available_windows_updates_for_managed_instance(
                mi.id, sort_by="TIMECREATED", sort_order="ASC").data
            security = [(u.display_name, []) for u in updates if u.update_type == "SECURITY"]
        else:
            updates = osms.list_available_updates_for_managed_instance(
                mi.id, sort_by="TIMECREATED", sort_order="ASC").data
            security = [(u.display_name, list(u.related_cves or [])) for u in updates if u.update_type == "SECURITY"]
        assert mi.security_updates_available == len(security), mi.display_name
        if security:
            vulnerable[mi.id] = (mi.display_name, security)
    return Report(total=len(instances), vulnerable=vulnerable)


SUMMARY = re.compile(r"^Detected out of (\d+) managed instances?, (\d+|None) (?:is|are) missing security patches!$", re.M)
INSTANCE = re.compile(r"^Managed Instance (.+) \((ocid1\.[^)\s]+)\)$", re.M)
CVE = re.compile(r"CVE-\d{4}-\d+")


def parse(stdout, details):
    """Reads the script's report back: the summary line and, with --show-details, each
    vulnerable instance with its security updates and their CVEs."""
    found = SUMMARY.findall(stdout)
    assert len(found) == 1, stdout
    total, count = int(found[0][0]), 0 if found[0][1] == "None" else int(found[0][1])
    if not details:
        assert not INSTANCE.search(stdout), stdout
        return Report(total, {}), count
    vulnerable = {}
    parts = INSTANCE.split(stdout)
    for name, iid, body in zip(parts[1::3], parts[2::3], parts[3::3]):
        lines = body.strip("\n").splitlines()
        assert lines[0] == " has the following outstanding security patches:", body
        updates = []
        for line in lines[1:]:
            text = line.strip()
            if not text:
                continue
            cves = CVE.findall(text)
            rest = CVE.sub("", text.removeprefix("CVEs:")).replace(",", "").strip()
            if cves and not rest:
                updates[-1][1].extend(cves)
            else:
                updates.append((text, []))
        vulnerable[iid] = (name, updates)
    assert len(vulnerable) == count, stdout
    return Report(total, vulnerable), count


def run_script(osmd, *args):
    env = dict(os.environ, REQUESTS_CA_BUNDLE=osmd.ca)
    out = subprocess.run([sys.executable, str(SCRIPT), "-C", osmd.config_file, *args],
                         env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stderr == "", out.stderr
    return out.stdout


def check(osmd, osms, instances, *args):
    details = "--show-details" in args or "-d" in args
    stdout = run_script(osmd, *args)
    got, count = parse(stdout, details)
    want = sdk_report(osms, instances)
    assert got.total == want.total, stdout
    assert count == len(want.vulnerable), stdout
    if details:
        assert got.vulnerable == want.vulnerable, stdout
    return want, stdout


def test_the_script_is_the_unmodified_sample():
    assert SCRIPT.exists(), f"the third-party client is expected at {SCRIPT}"
    text = SCRIPT.read_text()
    assert "Copyright (c) 2019, 2020 Oracle" in text and "PROGRAM_VERSION = '0.1.0'" in text


def test_plain_on_one_compartment(osmd, osms, tree):
    # Only the compartment itself: its two up-to-date hosts.
    want, stdout = check(osmd, osms, tree.instances("root"), "-c", tree.root)
    assert want.total == 2 and want.vulnerable == {}
    assert "None is missing security patches!" in stdout
    want, _ = check(osmd, osms, tree.instances("apps"), "-c", tree.apps)
    assert len(want.vulnerable) == 3


def test_show_details_lists_security_updates_and_cves(osmd, osms, tree):
    want, stdout = check(osmd, osms, tree.instances("apps"), "-c", tree.apps, "--show-details")
    assert len(want.vulnerable) == 3
    for _, updates in want.vulnerable.values():
        # 14 updates each: the script paged through them 10 at a time and kept the 4 SECURITY ones.
        assert len(updates) == 14 // 3
        assert all(cves for _, cves in updates)
    # Windows hosts: security updates by name, no CVEs.
    want, _ = check(osmd, osms, tree.instances("db"), "-c", tree.db, "-d")
    assert len(want.vulnerable) == 2
    assert all(not cves for _, updates in want.vulnerable.values() for _, cves in updates)


def active_subtree(identity, root):
    """root and every ACTIVE compartment below it, walked one level at a time with the SDK."""
    found, queue = [root], [root]
    while queue:
        children = oci.pagination.list_call_get_all_results(identity.list_compartments, queue.pop()).data
        for c in children:
            if c.lifecycle_state == "ACTIVE" and c.name != "ManagedCompartmentForPaaS":
                found.append(c.id)
                queue.append(c.id)
    return found


def test_recursive_over_the_compartment_tree(osmd, osms, identity, tree):
    # The script walks sub-compartments only from the tenancy (one list_compartments call with
    # compartmentIdInSubtree=true); from any other compartment its own recursion never ends (it
    # calls itself again on an empty list). So -R runs on the whole tenancy: the tree above and
    # whatever the other tests of this session enrolled.
    compartments = active_subtree(identity, osmd.tenancy)
    subtree = identity.list_compartments(osmd.tenancy, compartment_id_in_subtree=True).data
    assert sorted(compartments[1:]) == sorted(c.id for c in subtree if c.lifecycle_state == "ACTIVE")
    assert {tree.root, tree.apps, tree.deep, tree.db} <= set(compartments)
    everything = [i for c in compartments for i in osms.list_managed_instances(c).data]
    want, stdout = check(osmd, osms, everything, "-c", osmd.tenancy, "-R", "--show-details")
    mine = tree.instances("root", "apps", "deep", "db")
    assert {i.id for i in mine} <= {i.id for i in everything}
    # The tree's six vulnerable hosts, from both sub-compartments and the nested one, are in it.
    assert {i.id for i in tree.instances("apps", "deep", "db")} <= set(want.vulnerable)
    assert not {i.id for i in tree.instances("root")} & set(want.vulnerable)
    # Without -R the tenancy answers for its own compartment only.
    check(osmd, osms, osms.list_managed_instances(osmd.tenancy).data, "-c", osmd.tenancy)


def test_group(osmd, osms, tree):
    members = [i for i in tree.instances("root", "apps", "deep")
               if i.id in {m.id for m in osms.get_managed_instance_group(tree.group.id).data.managed_instances}]
    assert len(members) == 3
    want, stdout = check(osmd, osms, members, "-c", tree.root, "-g", tree.group.id, "--show-details")
    assert f"Managed Instance Group ID: {tree.group.id}" in stdout
    assert want.total == 3 and len(want.vulnerable) == 2
    assert set(want.vulnerable) == {tree.fleets["apps"].ids[0], tree.fleets["deep"].ids[0]}
