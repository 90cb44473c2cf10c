"""End to end with a simulated fleet (osm-sim, the real agent protocol) and the real oci SDK:
a scheduled job on a group runs on every member, and an install action is followed to its end."""
import datetime
import os
import pathlib
import signal
import subprocess
import time

import oci
import pytest

M = oci.os_management.models
REPO = pathlib.Path(__file__).resolve().parents[2]
FLEET = 4


@pytest.fixture(scope="module")
def fleet(osmd, identity):
    compartment = identity.create_compartment(oci.identity.models.CreateCompartmentDetails(
        compartment_id=osmd.tenancy, name="fleet", description="simulated instances")).data.id
    binary = os.environ.get("OSM_SIM_BIN", str(REPO / "target" / "debug" / "osm-sim"))
    log = open(os.path.join(osmd.data_dir, "osm-sim.log"), "w")
    sim = subprocess.Popen(
        [binary, "--server", f"https://127.0.0.1:{osmd.port}", "--ca", osmd.ca,
         "--install-key", str(osmd.data_dir / "admin" / "install-key"), "--instances", str(FLEET),
         "--compartment", compartment, "--action-ms", "50"],
        stdout=log, stderr=subprocess.STDOUT)
    osms = oci.os_management.OsManagementClient(osmd.config)
    deadline = time.time() + 30
    while len(osms.list_managed_instances(compartment).data) < FLEET:
        assert sim.poll() is None, open(os.path.join(osmd.data_dir, "osm-sim.log")).read()
        assert time.time() < deadline, "the simulated instances did not enrol"
        time.sleep(0.2)
    yield compartment
    sim.send_signal(signal.SIGTERM)
    sim.wait(timeout=20)


def wait_succeeded(osms, work_request_id):
    response = oci.wait_until(osms, osms.get_work_request(work_request_id), "status", "SUCCEEDED",
                              max_wait_seconds=60, max_interval_seconds=1)
    return response.data


def test_scheduled_job_on_a_group_of_simulated_instances(osms, fleet):
    instances = osms.list_managed_instances(fleet).data
    assert sorted(i.display_name for i in instances) == [f"sim-{n:05d}" for n in range(1, FLEET + 1)]
    group = osms.create_managed_instance_group(M.CreateManagedInstanceGroupDetails(
        compartment_id=fleet, display_name="sim-group")).data
    for i in instances:
        osms.attach_managed_instance_to_managed_instance_group(group.id, i.id)
    soon = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=2)
    job = osms.create_scheduled_job(M.CreateScheduledJobDetails(
        compartment_id=fleet, display_name="patch the fleet", schedule_type="ONETIME",
        time_next_execution=soon, managed_instance_groups=[M.Id(id=group.id, display_name=group.display_name)],
        operation_type="UPDATEALL", update_type="SECURITY")).data
    deadline = time.time() + 30
    while len(osms.get_scheduled_job(job.id).data.work_requests or []) < FLEET:
        assert time.time() < deadline, "the job did not fire"
        time.sleep(0.3)
    job = osms.get_scheduled_job(job.id).data
    assert job.time_last_execution is not None
    for ref in job.work_requests:
        done = wait_succeeded(osms, ref.id)
        assert done.operation_type == "UPDATEALL"
        assert done.percent_complete == 100
        logs = [l.message for l in osms.list_work_request_logs(ref.id, sort_by="TIMECREATED", sort_order="ASC").data]
        assert any(m.startswith("simulated:") for m in logs), logs
        assert logs[-1] == "Succeeded"


def test_install_package_followed_to_its_end(osms, fleet):
    instance = osms.list_managed_instances(fleet, sort_by="DISPLAYNAME").data[0]
    response = osms.install_package_on_managed_instance(instance.id, "bash-5.2.15-2")
    work_request_id = response.headers["opc-work-request-id"]
    assert osms.get_work_request(work_request_id).data.status in ("ACCEPTED", "IN_PROGRESS", "SUCCEEDED")
    done = wait_succeeded(osms, work_request_id)
    assert done.managed_instance_id.id == instance.id
    assert done.time_finished is not None
