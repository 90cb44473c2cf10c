"""Package inventory with simulated instances (osm-sim uploads it on the real agent protocol)
read back through the real oci SDK: security updates with their CVEs and errata, and the
installed packages walked with the SDK's pagination helper."""
import os
import pathlib
import signal
import subprocess
import time

import oci
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
FLEET = 3


@pytest.fixture(scope="module")
def vulnerable_fleet(osmd, identity):
    compartment = identity.create_compartment(oci.identity.models.CreateCompartmentDetails(
        compartment_id=osmd.tenancy, name="inventory", description="simulated instances")).data.id
    binary = os.environ.get("OSM_SIM_BIN", str(REPO / "target" / "debug" / "osm-sim"))
    log_path = os.path.join(osmd.data_dir, "osm-sim-inventory.log")
    sim = subprocess.Popen(
        [binary, "--server", f"https://127.0.0.1:{osmd.port}", "--ca", osmd.ca,
         "--install-key", str(osmd.data_dir / "admin" / "install-key"), "--instances", str(FLEET),
         "--compartment", compartment, "--security-ratio", "1", "--updates-per-instance", "9",
         "--first", "101"],
        stdout=open(log_path, "w"), stderr=subprocess.STDOUT)
    osms = oci.os_management.OsManagementClient(osmd.config)
    deadline = time.time() + 60
    while True:
        instances = osms.list_managed_instances(compartment).data
        reported = [i for i in instances
                    if osms.list_available_updates_for_managed_instance(i.id).data]
        if len(reported) == FLEET:
            break
        assert sim.poll() is None, open(log_path).read()
        assert time.time() < deadline, "the simulated instances did not report their inventory"
        time.sleep(0.3)
    yield compartment
    sim.send_signal(signal.SIGTERM)
    sim.wait(timeout=20)


def test_security_updates_carry_cves_and_errata(osms, vulnerable_fleet):
    for instance in osms.list_managed_instances(vulnerable_fleet).data:
        updates = osms.list_available_updates_for_managed_instance(instance.id).data
        assert len(updates) == 9
        security = [u for u in updates if u.update_type == "SECURITY"]
        assert len(security) == 3, [u.update_type for u in updates]
        for u in security:
            assert u.related_cves and all(c.startswith("CVE-") for c in u.related_cves)
            assert len(u.errata) == 1
            assert u.errata[0].id.startswith("ocid1.osmserratum.")
            assert u.installed_version != u.available_version
        assert {u.update_type for u in updates} <= {"SECURITY", "BUG", "ENHANCEMENT"}
        details = osms.get_managed_instance(instance.id).data
        assert details.security_updates_available == 3
        assert details.updates_available == 9


def test_installed_packages_walk_every_page(osms, vulnerable_fleet):
    instance = osms.list_managed_instances(vulnerable_fleet, sort_by="DISPLAYNAME").data[0]
    everything = osms.list_packages_installed_on_managed_instance(instance.id).data
    assert 200 <= len(everything) <= 300
    paged = oci.pagination.list_call_get_all_results(
        osms.list_packages_installed_on_managed_instance, instance.id,
        limit=37, sort_by="DISPLAYNAME", sort_order="ASC").data
    assert [(p.name, p.architecture) for p in paged] == sorted((p.name, p.architecture) for p in everything)
    assert all(p.type in ("deb", "rpm") and p.version for p in paged)
    first = osms.list_packages_installed_on_managed_instance(instance.id, limit=37)
    assert len(first.data) == 37 and first.has_next_page
