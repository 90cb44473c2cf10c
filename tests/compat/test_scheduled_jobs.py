import datetime

import oci
import pytest

M = oci.os_management.models


def soon(hours):
    return datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=hours)


@pytest.fixture
def group(osms, compartment):
    return osms.create_managed_instance_group(M.CreateManagedInstanceGroupDetails(
        compartment_id=compartment, display_name="targets")).data


def test_scheduled_job_crud(osms, compartment, group):
    recurring = osms.create_scheduled_job(M.CreateScheduledJobDetails(
        compartment_id=compartment, display_name="nightly security", schedule_type="RECURRING",
        time_next_execution=soon(3), interval_type="DAY", interval_value="1",
        managed_instance_groups=[M.Id(id=group.id, display_name=group.display_name)],
        operation_type="UPDATEALL", update_type="SECURITY")).data
    assert recurring.lifecycle_state == "ACTIVE"
    assert recurring.interval_value == "1" and recurring.interval_type == "DAY"
    assert recurring.managed_instance_groups[0].id == group.id
    onetime = osms.create_scheduled_job(M.CreateScheduledJobDetails(
        compartment_id=compartment, display_name="install bash", schedule_type="ONETIME",
        time_next_execution=soon(30), managed_instance_groups=[M.Id(id=group.id, display_name="x")],
        operation_type="INSTALL", package_names=[M.PackageName(name="bash")])).data
    assert [p.name for p in onetime.package_names] == ["bash"]

    jobs = osms.list_scheduled_jobs(compartment).data
    assert {j.id for j in jobs} == {recurring.id, onetime.id}
    by_group = osms.list_scheduled_jobs(compartment, managed_instance_group_id=group.id, operation_type="UPDATEALL").data
    assert [j.id for j in by_group] == [recurring.id]
    upcoming = osms.list_upcoming_scheduled_jobs(compartment, soon(24)).data
    assert [j.id for j in upcoming] == [recurring.id]

    got = osms.get_scheduled_job(recurring.id)
    updated = osms.update_scheduled_job(recurring.id, M.UpdateScheduledJobDetails(
        interval_type="WEEK", interval_value="2"), if_match=got.headers["etag"]).data
    assert updated.interval_type == "WEEK" and updated.interval_value == "2"
    assert updated.update_type == "SECURITY"

    osms.delete_scheduled_job(onetime.id)
    assert osms.get_scheduled_job(onetime.id).data.lifecycle_state != "ACTIVE"
    assert [j.id for j in osms.list_scheduled_jobs(compartment).data] == [recurring.id]


@pytest.mark.parametrize("change, needle", [
    (dict(schedule_type="RECURRING"), "intervalType"),
    (dict(time_next_execution=soon(-2)), "past"),
    (dict(package_names=[]), "packageNames"),
    (dict(interval_type="DAY", interval_value="zero", schedule_type="RECURRING"), "intervalValue"),
])
def test_invalid_jobs_are_refused_with_400(osms, compartment, group, change, needle):
    fields = dict(compartment_id=compartment, display_name="bad", schedule_type="ONETIME",
                  time_next_execution=soon(1), managed_instance_groups=[M.Id(id=group.id, display_name="g")],
                  operation_type="INSTALL", package_names=[M.PackageName(name="bash")])
    fields.update(change)
    with pytest.raises(oci.exceptions.ServiceError) as err:
        osms.create_scheduled_job(M.CreateScheduledJobDetails(**fields))
    assert err.value.status == 400
    assert err.value.code in ("InvalidParameter", "MissingParameter")
    assert needle in err.value.message
    assert osms.list_scheduled_jobs(compartment).data == []
