"""Oracle's sample compliance report script (`../shared/clients/compliance_report.py`, run
unmodified from there) against osmd with simulated instances, in its four modes — plain,
`--show-details`, `-R` over a compartment tree, `-g` on a group — and what it prints checked
against `osmctl report compliance --format json` on the same data: the totals, the vulnerable
instances, their security updates and CVEs."""
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import oci
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = REPO.parent / "shared" / "clients" / "compliance_report.py"
SIM = os.environ.get("OSM_SIM_BIN", str(REPO / "target" / "debug" / "osm-sim"))
OSMCTL = os.environ.get("OSMCTL_BIN", str(REPO / "target" / "debug" / "osmctl"))

# (where, hostnames from, how many, extra osm-sim flags): vulnerable Linux hosts at the top,
# patched ones and a vulnerable Windows host one level down, a vulnerable one two levels down.
FLEET = [
    ("top", 301, 2, ["--security-ratio", "1", "--updates-per-instance", "7"]),
    ("child", 311, 2, ["--security-ratio", "0", "--updates-per-instance", "5"]),
    ("child", 321, 1, ["--security-ratio", "1", "--windows-ratio", "1", "--updates-per-instance", "6"]),
    ("grandchild", 331, 1, ["--security-ratio", "1", "--updates-per-instance", "12"]),
]


def osmctl(osmd, *args):
    out = subprocess.run([OSMCTL, "--config", osmd.config_file, "--ca", osmd.ca, *args],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def report(osmd, *args):
    return json.loads(osmctl(osmd, "report", "compliance", "--details", "--format", "json", *args))


@pytest.fixture(scope="module")
def tree(osmd, identity):
    """The compartment tree with its simulated hosts, every inventory uploaded, and a group."""
    assert SCRIPT.exists(), f"the third-party client is expected at {SCRIPT}"
    new = lambda parent, name: identity.create_compartment(oci.identity.models.CreateCompartmentDetails(
        compartment_id=parent, name=name, description="compliance report")).data.id
    top = new(osmd.tenancy, "compliance")
    child = new(top, "compliance-child")
    grandchild = new(child, "compliance-grandchild")
    where = {"top": top, "child": child, "grandchild": grandchild}
    sims = []
    for place, first, count, extra in FLEET:
        log = open(os.path.join(osmd.data_dir, f"osm-sim-compliance-{first}.log"), "w")
        sims.append(subprocess.Popen(
            [SIM, "--server", f"https://127.0.0.1:{osmd.port}", "--ca", osmd.ca,
             "--install-key", str(osmd.data_dir / "admin" / "install-key"), "--instances", str(count),
             "--compartment", where[place], "--first", str(first), *extra],
            stdout=log, stderr=subprocess.STDOUT))
    expected = sum(count for _, _, count, _ in FLEET)
    deadline = time.time() + 60
    while True:
        summary = report(osmd, "-c", top, "-R")["summary"]
        if summary["instancesScanned"] == expected and summary["instancesWithoutInventory"] == 0:
            break
        assert all(s.poll() is None for s in sims), "osm-sim stopped"
        assert time.time() < deadline, f"the simulated hosts did not all report: {summary}"
        time.sleep(0.3)
    osms = oci.os_management.OsManagementClient(osmd.config)
    group = osms.create_managed_instance_group(oci.os_management.models.CreateManagedInstanceGroupDetails(
        compartment_id=top, display_name="compliance-group", os_family="LINUX")).data.id
    members = [i for i in osms.list_managed_instances(top).data] + \
              [i for i in osms.list_managed_instances(child).data if i.os_family == "LINUX"][:1]
    for i in members:
        osms.attach_managed_instance_to_managed_instance_group(group, i.id)
    yield {"top": top, "child": child, "grandchild": grandchild, "group": group,
           "group_members": {i.id for i in members}}
    for s in sims:
        s.send_signal(signal.SIGTERM)
    for s in sims:
        s.wait(timeout=20)


def run_script(osmd, *args):
    env = dict(os.environ, REQUESTS_CA_BUNDLE=osmd.ca)
    out = subprocess.run([sys.executable, str(SCRIPT), "-C", osmd.config_file, *args],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


OVERVIEW = re.compile(r"Detected out of (\d+) managed instances?, (\S+) (?:is|are) missing security patches!")
INSTANCE = re.compile(r"^Managed Instance (.*) \((ocid1\.[^)]+)\)$")
CVE = re.compile(r"CVE-\d{4}-\d+")


def parse(stdout):
    """What the script printed: (total, vulnerable count, {id: (name, [update names], {CVEs})})."""
    m = OVERVIEW.search(stdout)
    assert m, stdout
    total, vulnerable = int(m.group(1)), (0 if m.group(2) == "None" else int(m.group(2)))
    details = {}
    current = None
    for line in stdout.splitlines():
        hit = INSTANCE.match(line)
        if hit:
            current = hit.group(2)
            details[current] = (hit.group(1), [], set())
        elif not line.strip():
            current = None
        elif current is None or line == " has the following outstanding security patches:":
            continue
        elif line.startswith(" CVEs:") or line.startswith("  "):
            # The CVE lines of the update above, wrapped past 65 characters.
            details[current][2].update(CVE.findall(line))
        elif line.startswith(" "):
            details[current][1].append(line[1:])
    return total, vulnerable, details


def expected(osmctl_report):
    s = osmctl_report["summary"]
    missing = {i["id"]: (i["displayName"], sorted(u["displayName"] for u in i["updates"]), set(i["relatedCves"]))
               for i in osmctl_report["instances"] if i["missingUpdates"] > 0}
    return s["instancesScanned"], s["instancesMissingUpdates"], missing


def check(osmd, script_args, osmctl_args, show_details, instances, vulnerable):
    stdout = run_script(osmd, *script_args, *(["--show-details"] if show_details else []))
    total, count, details = parse(stdout)
    ours = report(osmd, *osmctl_args)
    want_total, want_count, want = expected(ours)
    # The figures are what osm-sim was asked for, and both reports agree on them.
    assert (want_total, want_count) == (instances, vulnerable), ours["summary"]
    assert (total, count) == (want_total, want_count), stdout
    if show_details:
        assert {k: (v[0], sorted(v[1]), v[2]) for k, v in details.items()} == want, stdout
        assert ours["summary"]["distinctCves"] == len(set().union(*(v[2] for v in details.values())))
    else:
        assert details == {}, stdout
    return ours


def test_plain_on_a_compartment(osmd, tree):
    ours = check(osmd, ["-c", tree["top"]], ["-c", tree["top"]], False, instances=2, vulnerable=2)
    assert ours["scope"]["compartmentIdInSubtree"] is False


def test_show_details_on_a_compartment(osmd, tree):
    ours = check(osmd, ["-c", tree["child"]], ["-c", tree["child"]], True, instances=3, vulnerable=1)
    windows = [i for i in ours["instances"] if i["osFamily"] == "WINDOWS"]
    assert len(windows) == 1 and windows[0]["missingUpdates"] == 2
    assert all(u["kind"] == "WINDOWS_UPDATE" for u in windows[0]["updates"])


def stable(r):
    """A report without what moves with the clock: its own time, the inventories' ages, and the
    last check-in of instances whose agents still run (other modules' osm-sim fleets share the
    tenancy and heartbeat every 30 s)."""
    r = dict(r)
    r.pop("timeGenerated")
    moving = {"inventoryAgeSeconds", "lastCheckin"}
    r["instances"] = [{k: v for k, v in i.items() if k not in moving} for i in r["instances"]]
    return r


def changes(before, after):
    """What differs between two reports, field by field (instances by id), to say what moved."""
    a, b = stable(before), stable(after)
    out = {k: (a.get(k), b.get(k)) for k in set(a) | set(b) if k != "instances" and a.get(k) != b.get(k)}
    old = {i["id"]: i for i in a["instances"]}
    new = {i["id"]: i for i in b["instances"]}
    for id in old.keys() | new.keys():
        x, y = old.get(id, {}), new.get(id, {})
        moved = {k: (x.get(k), y.get(k)) for k in x.keys() | y.keys() if x.get(k) != y.get(k)}
        if moved:
            out[x.get("displayName") or y.get("displayName")] = moved
    if [i["id"] for i in a["instances"]] != [i["id"] for i in b["instances"]] and not out:
        out["order"] = ([i["displayName"] for i in a["instances"]], [i["displayName"] for i in b["instances"]])
    return out


def test_recursive_over_the_compartment_tree(osmd, tree):
    """`-R` walks the tree from the tenancy: the script's own walk from any other compartment
    never ends (`list_compartments` calls itself again on an empty list until Python's recursion
    limit), whatever the server answers. The tenancy holds what earlier test modules left too,
    so the figures are compared between the two reports, and this module's tree checked in them."""
    before = report(osmd, "-R")
    stdout = run_script(osmd, "-c", osmd.tenancy, "-R", "--show-details")
    after = report(osmd, "-R")
    assert stable(before) == stable(after), f"the fleet changed while the script ran: {changes(before, after)}"
    total, count, details = parse(stdout)
    want_total, want_count, want = expected(after)
    assert (total, count) == (want_total, want_count), stdout
    assert {k: (v[0], sorted(v[1]), v[2]) for k, v in details.items()} == want, stdout
    assert after["scope"] == {"compartmentId": osmd.tenancy, "compartmentIdInSubtree": True,
                              "compartmentCount": after["scope"]["compartmentCount"]}
    # This module's tree is in it: 6 hosts, 4 vulnerable, one in each compartment of the tree.
    mine = [i for i in after["instances"] if i["compartmentId"] in (tree["top"], tree["child"], tree["grandchild"])]
    assert len(mine) == 6
    places = {i["compartmentId"] for i in mine if i["missingUpdates"] > 0}
    assert places == {tree["top"], tree["child"], tree["grandchild"]}
    assert sum(1 for i in mine if i["missingUpdates"] > 0) == 4
    assert {i["id"] for i in mine if i["missingUpdates"] > 0} <= set(details)
    # osmctl walks the tree from any compartment: the script's numbers for this tree, summed
    # compartment by compartment (its plain mode), are what osmctl says of the subtree.
    ours = report(osmd, "-c", tree["top"], "-R")
    assert ours["scope"]["compartmentCount"] == 3
    plain = [parse(run_script(osmd, "-c", tree[c]))[:2] for c in ("top", "child", "grandchild")]
    assert (sum(p[0] for p in plain), sum(p[1] for p in plain)) == (6, 4)
    assert (ours["summary"]["instancesScanned"], ours["summary"]["instancesMissingUpdates"]) == (6, 4)
    # The text form says the same.
    text = osmctl(osmd, "report", "compliance", "-c", tree["top"], "-R")
    assert re.search(r"Instances scanned\s+6\b", text), text
    assert re.search(r"Instances missing updates\s+4\b", text), text


def test_group(osmd, tree):
    ours = check(osmd, ["-c", tree["top"], "-g", tree["group"]], ["-g", tree["group"]], True,
                 instances=3, vulnerable=2)
    assert {i["id"] for i in ours["instances"]} == tree["group_members"]
    stdout = run_script(osmd, "-c", tree["top"], "-g", tree["group"])
    assert f"Managed Instance Group ID: {tree['group']}" in stdout
