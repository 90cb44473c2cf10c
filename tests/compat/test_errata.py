"""Errata through the real oci SDK and CLI: simulated Debian 12 hosts (osm-sim --distro debian)
report an openssl update as a bug fix; an OSV advisory imported into osmd (the osm extension
POST /osm/v1/errata/import, signed by the SDK's own signer) makes it a security update with
its CVE, and list_errata, get_erratum and list_managed_instance_errata show the erratum."""
import datetime
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import oci
import pytest
from oci._vendor import requests

REPO = pathlib.Path(__file__).resolve().parents[2]
OCI = str(pathlib.Path(sys.executable).parent / "oci")
FLEET = 2
ADVISORY = "DSA-9101-1"
CVE = "CVE-2024-41001"
# Every sim with an update per package (--updates-per-instance 400) offers openssl
# 3.2.4-1+deb12u3 -> 3.2.5-1+deb12u3, reported as BUG when --security-ratio is 0.
OSV_RECORDS = [
    {
        "schema_version": "1.6.0",
        "id": ADVISORY,
        "aliases": [CVE],
        "summary": "openssl security update",
        "details": "A flaw was found in openssl.",
        "published": "2024-05-01T00:00:00Z",
        "modified": "2024-05-02T00:00:00Z",
        "references": [{"type": "ADVISORY", "url": "https://security.example/DSA-9101-1"}],
        "affected": [{"package": {"ecosystem": "Debian:12", "name": "openssl"},
                      "ranges": [{"type": "ECOSYSTEM",
                                  "events": [{"introduced": "0"}, {"fixed": "3.2.5-1+deb12u3"}]}]}],
    },
    {
        "id": "DSA-9102-1",
        "aliases": ["CVE-2024-41002"],
        "summary": "zzz-nothing security update",
        "published": "2024-04-01T00:00:00Z",
        "modified": "2024-05-02T00:00:00Z",
        "affected": [{"package": {"ecosystem": "Debian:12", "name": "zzz-nothing"},
                      "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.0-1"}]}]}],
    },
]


def signed_import(osmd, body):
    config = osmd.config
    signer = oci.signer.Signer(config["tenancy"], config["user"], config["fingerprint"], config["key_file"])
    return requests.post(f"https://127.0.0.1:{osmd.port}/osm/v1/errata/import", data=json.dumps(body),
                         headers={"content-type": "application/json"}, auth=signer, verify=osmd.ca, timeout=60)


@pytest.fixture(scope="module")
def debian_fleet(osmd, identity):
    compartment = identity.create_compartment(oci.identity.models.CreateCompartmentDetails(
        compartment_id=osmd.tenancy, name="errata", description="simulated Debian hosts")).data.id
    binary = os.environ.get("OSM_SIM_BIN", str(REPO / "target" / "debug" / "osm-sim"))
    log_path = os.path.join(osmd.data_dir, "osm-sim-errata.log")
    sim = subprocess.Popen(
        [binary, "--server", f"https://127.0.0.1:{osmd.port}", "--ca", osmd.ca,
         "--install-key", str(osmd.data_dir / "admin" / "install-key"), "--instances", str(FLEET),
         "--compartment", compartment, "--distro", "debian", "--security-ratio", "0",
         "--updates-per-instance", "400", "--first", "301"],
        stdout=open(log_path, "w"), stderr=subprocess.STDOUT)
    osms = oci.os_management.OsManagementClient(osmd.config)
    deadline = time.time() + 60
    while True:
        instances = osms.list_managed_instances(compartment).data
        reported = [i for i in instances
                    if osms.list_available_updates_for_managed_instance(i.id, display_name="openssl").data]
        if len(reported) == FLEET:
            break
        assert sim.poll() is None, open(log_path).read()
        assert time.time() < deadline, "the simulated instances did not report their inventory"
        time.sleep(0.3)
    before = {i.id: osms.list_available_updates_for_managed_instance(i.id, display_name="openssl").data[0]
              for i in instances}
    assert {u.update_type for u in before.values()} == {"BUG"}
    r = signed_import(osmd, {"records": OSV_RECORDS})
    assert r.status_code == 200, r.text
    summary = r.json()
    assert summary["records"] == 2 and summary["updatesChanged"] >= FLEET, summary
    yield compartment, [i.id for i in instances]
    sim.send_signal(signal.SIGTERM)
    sim.wait(timeout=20)


def test_the_fixed_update_becomes_security_with_the_cve(osms, debian_fleet):
    _, instances = debian_fleet
    for instance in instances:
        update = osms.list_available_updates_for_managed_instance(instance, display_name="openssl").data[0]
        assert update.update_type == "SECURITY"
        assert CVE in update.related_cves
        assert [e.display_name for e in update.errata] == [ADVISORY]
        assert update.errata[0].id.startswith("ocid1.osmserratum.")
        assert osms.get_managed_instance(instance).data.security_updates_available == 1


def test_list_errata(osmd, osms, debian_fleet):
    found = osms.list_errata(compartment_id=osmd.tenancy, advisory_name=ADVISORY).data
    assert len(found) == 1
    e = found[0]
    assert isinstance(e, oci.os_management.models.ErratumSummary)
    assert e.name == ADVISORY and e.id.startswith("ocid1.osmserratum.")
    assert e.compartment_id == osmd.tenancy
    assert e.advisory_type == "SECURITY"
    assert e.related_cves == [CVE]
    assert e.synopsis == "openssl security update"
    assert e.issued.startswith("2024-05-01T00:00:00")
    # Every row without a limit, and the same rows through the SDK's pagination helper.
    everything = osms.list_errata(compartment_id=osmd.tenancy, sort_by="ADVISORYNAME").data
    assert {ADVISORY, "DSA-9102-1"} <= {x.name for x in everything}
    paged = oci.pagination.list_call_get_all_results(
        osms.list_errata, compartment_id=osmd.tenancy, sort_by="ADVISORYNAME", sort_order="ASC", limit=1).data
    assert [x.id for x in paged] == [x.id for x in everything]
    assert [x.name for x in paged] == sorted(x.name for x in paged)
    one = osms.list_errata(compartment_id=osmd.tenancy, sort_by="ADVISORYNAME", limit=1)
    assert len(one.data) == 1 and one.has_next_page == (len(everything) > 1)
    # The issue-date window and the erratum id filter.
    window = osms.list_errata(
        compartment_id=osmd.tenancy,
        time_issue_date_start=datetime.datetime(2024, 4, 15, tzinfo=datetime.timezone.utc),
        time_issue_date_end=datetime.datetime(2024, 5, 15, tzinfo=datetime.timezone.utc)).data
    assert [x.name for x in window] == [ADVISORY]
    assert [x.name for x in osms.list_errata(erratum_id=e.id).data] == [ADVISORY]


def test_get_erratum(osms, debian_fleet):
    _, instances = debian_fleet
    summary = osms.list_errata(advisory_name=ADVISORY).data[0]
    e = osms.get_erratum(summary.id).data
    assert isinstance(e, oci.os_management.models.Erratum)
    assert e.name == ADVISORY and e.id == summary.id
    assert e._from == "Debian"
    assert e.description == "A flaw was found in openssl."
    assert e.related_cves == [CVE]
    assert "openssl 3.2.5-1+deb12u3" in e.solution
    assert e.references == "https://security.example/DSA-9101-1"
    assert sorted(i.id for i in e.affected_instances) == sorted(instances)
    assert all(i.display_name.startswith("sim-003") for i in e.affected_instances)
    assert {(p.name, p.version, p.type) for p in e.packages} == {("openssl", "3.2.5-1+deb12u3", "deb")}
    assert e.software_sources == []


def test_list_managed_instance_errata(osms, debian_fleet):
    compartment, instances = debian_fleet
    for instance in instances:
        errata = osms.list_managed_instance_errata(instance, sort_by="DISPLAYNAME").data
        assert [x.name for x in errata] == [ADVISORY]
        assert errata[0].related_cves == [CVE]
        assert osms.list_managed_instance_errata(instance, compartment_id=compartment).data
        paged = oci.pagination.list_call_get_all_results(
            osms.list_managed_instance_errata, instance, limit=1).data
        assert [x.name for x in paged] == [ADVISORY]


def test_unknown_erratum_is_a_clear_404(osms):
    with pytest.raises(oci.exceptions.ServiceError) as err:
        osms.get_erratum("ocid1.osmserratum.oc1..doesnotexist")
    assert err.value.status == 404
    assert err.value.code == "NotAuthorizedOrNotFound"
    assert "does not exist" in err.value.message
    with pytest.raises(oci.exceptions.ServiceError) as err:
        osms.list_managed_instance_errata("ocid1.instance.oc1..doesnotexist")
    assert err.value.status == 404


def test_a_bad_record_is_refused_whole(osmd, osms, debian_fleet):
    bad = json.loads(json.dumps(OSV_RECORDS))
    bad[0]["modified"] = "2024-06-01T00:00:00Z"
    bad[0]["aliases"] = [CVE, "CVE-2024-41099"]
    bad[1]["affected"][0]["ranges"][0]["events"][1]["fixed"] = "1.0 beta"
    r = signed_import(osmd, {"records": bad})
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "InvalidParameter"
    assert "records[1] (DSA-9102-1): affected[0].ranges[0].events[1]" in r.json()["message"]
    # The good record of the batch was not applied either.
    assert osms.list_errata(advisory_name=ADVISORY).data[0].related_cves == [CVE]


def test_cli_gets_an_erratum(osmd, debian_fleet):
    _, instances = debian_fleet
    summary = oci.os_management.OsManagementClient(osmd.config).list_errata(advisory_name=ADVISORY).data[0]
    env = dict(os.environ, OCI_CLI_SUPPRESS_FILE_PERMISSIONS_WARNING="True", SUPPRESS_LABEL_WARNING="True",
               REQUESTS_CA_BUNDLE=osmd.ca)
    out = subprocess.run([OCI, "--config-file", osmd.config_file, "os-management", "erratum", "get",
                          "--erratum-id", summary.id], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)["data"]
    assert data["name"] == ADVISORY
    # The CLI names the SDK's `_from` attribute "-from".
    assert data["-from"] == "Debian", sorted(data)
    assert data["related-cves"] == [CVE]
    assert sorted(i["id"] for i in data["affected-instances"]) == sorted(instances)
    listed = subprocess.run([OCI, "--config-file", osmd.config_file, "os-management", "managed-instance",
                             "list-managed-instance-errata", "--managed-instance-id", instances[0], "--all"],
                            env=env, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert [e["name"] for e in json.loads(listed.stdout)["data"]] == [ADVISORY]
