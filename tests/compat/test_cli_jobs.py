"""Scheduled jobs through the real `oci os-management scheduled-job …` CLI 3.64.1, each outcome
read back with the SDK: create (one-time and recurring, on instances and on groups), list with
`--all` over several pages, get, update with etags, run-now, skip-next (and its 409 on a one-time
job), list-upcoming and delete."""
import datetime
import json
import time

import oci
import pytest

M = oci.os_management.models


def at(**delta):
    t = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) + datetime.timedelta(**delta)
    return t.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def ids(rows):
    return [r["id"] for r in rows]


@pytest.fixture(scope="module")
def targets(new_compartment, sim_fleet, osms):
    """Two simulated instances and a group holding both."""
    compartment = new_compartment("cli-jobs")
    fleet = sim_fleet(compartment, 2)
    group = osms.create_managed_instance_group(M.CreateManagedInstanceGroupDetails(
        compartment_id=compartment, display_name="cli-jobs-group")).data
    for i in fleet.instances:
        osms.attach_managed_instance_to_managed_instance_group(group.id, i.id)
    return compartment, fleet, group


def create(oci_cli, compartment, name, *args):
    out = oci_cli("os-management", "scheduled-job", "create", "--compartment-id", compartment,
                  "--display-name", name, *args)
    assert out["etag"], out
    return out["data"]


@pytest.fixture(scope="module")
def jobs(oci_cli, targets):
    compartment, fleet, group = targets
    instance = fleet.instances[0]
    on_instance = json.dumps([{"id": instance.id, "displayName": instance.display_name}])
    on_group = json.dumps([{"id": group.id, "displayName": group.display_name}])
    return {
        "once-instance": create(
            oci_cli, compartment, "install bash once", "--schedule-type", "ONETIME",
            "--time-next-execution", at(days=30), "--operation-type", "INSTALL",
            "--managed-instances", on_instance, "--package-names", '[{"name": "bash"}]'),
        "recurring-group": create(
            oci_cli, compartment, "nightly security", "--schedule-type", "RECURRING",
            "--time-next-execution", at(hours=2), "--interval-type", "DAY", "--interval-value", "1",
            "--operation-type", "UPDATEALL", "--update-type", "SECURITY",
            "--managed-instance-groups", on_group, "--freeform-tags", '{"team": "ops"}'),
        "once-group": create(
            oci_cli, compartment, "remove telnet once", "--schedule-type", "ONETIME",
            "--time-next-execution", at(days=40), "--operation-type", "REMOVE",
            "--managed-instance-groups", on_group, "--package-names", '[{"name": "telnet"}]'),
        "recurring-instance": create(
            oci_cli, compartment, "weekly everything", "--schedule-type", "RECURRING",
            "--time-next-execution", at(days=3), "--interval-type", "WEEK", "--interval-value", "1",
            "--operation-type", "UPDATEALL", "--update-type", "ALL", "--managed-instances", on_instance),
    }


def test_create_one_time_and_recurring_on_instances_and_groups(osms, targets, jobs):
    compartment, fleet, group = targets
    for key, created in jobs.items():
        job = osms.get_scheduled_job(created["id"]).data
        assert job.compartment_id == compartment
        assert job.lifecycle_state == created["lifecycle-state"] == "ACTIVE"
        assert job.display_name == created["display-name"]
        assert job.schedule_type == created["schedule-type"] == ("ONETIME" if key.startswith("once") else "RECURRING")
        assert job.operation_type == created["operation-type"]
        if key.endswith("group"):
            assert [g.id for g in job.managed_instance_groups] == [group.id]
            assert [g["id"] for g in created["managed-instance-groups"]] == [group.id]
            assert not job.managed_instances
        else:
            assert [i.id for i in job.managed_instances] == [fleet.instances[0].id]
            assert [i["id"] for i in created["managed-instances"]] == [fleet.instances[0].id]
        # The CLI printed the same next execution the SDK reads.
        assert datetime.datetime.fromisoformat(created["time-next-execution"]) == job.time_next_execution
    recurring = osms.get_scheduled_job(jobs["recurring-group"]["id"]).data
    assert (recurring.interval_type, recurring.interval_value, recurring.update_type) == ("DAY", "1", "SECURITY")
    assert recurring.freeform_tags == {"team": "ops"}
    once = osms.get_scheduled_job(jobs["once-instance"]["id"]).data
    assert [p.name for p in once.package_names] == ["bash"] and once.interval_type is None


def test_get_and_list_with_filters(oci_cli, osms, targets, jobs):
    compartment, fleet, group = targets
    job_id = jobs["recurring-group"]["id"]
    got = oci_cli("os-management", "scheduled-job", "get", "--scheduled-job-id", job_id)
    sdk = osms.get_scheduled_job(job_id)
    assert got["etag"] == sdk.headers["etag"]
    assert got["data"]["id"] == job_id and got["data"]["interval-type"] == "DAY"
    everything = oci_cli("os-management", "scheduled-job", "list", "--compartment-id", compartment, "--all")["data"]
    assert sorted(ids(everything)) == sorted(j["id"] for j in jobs.values())
    by_group = oci_cli("os-management", "scheduled-job", "list", "--compartment-id", compartment, "--all",
                       "--managed-instance-group-id", group.id)["data"]
    assert sorted(ids(by_group)) == sorted([jobs["recurring-group"]["id"], jobs["once-group"]["id"]])
    by_instance = oci_cli("os-management", "scheduled-job", "list", "--compartment-id", compartment, "--all",
                          "--managed-instance-id", fleet.instances[0].id, "--operation-type", "UPDATEALL")["data"]
    assert ids(by_instance) == [jobs["recurring-instance"]["id"]]
    named = oci_cli("os-management", "scheduled-job", "list", "--compartment-id", compartment,
                    "--display-name", "nightly security")["data"]
    assert ids(named) == [job_id]
    upcoming = oci_cli("os-management", "scheduled-job", "list-upcoming", "--compartment-id", compartment,
                       "--time-end", at(days=4), "--all")["data"]
    assert sorted(ids(upcoming)) == sorted([job_id, jobs["recurring-instance"]["id"]])
    assert {j.id for j in osms.list_upcoming_scheduled_jobs(compartment, at(days=4)).data} == set(ids(upcoming))


def test_list_all_walks_every_page_once(oci_cli, osms, new_compartment):
    # More jobs than one page, several of them with the same name, so the cursor has to break ties.
    compartment = new_compartment("cli-jobs-pages")
    group = osms.create_managed_instance_group(M.CreateManagedInstanceGroupDetails(
        compartment_id=compartment, display_name="pages")).data
    created = []
    for n in range(23):
        created.append(osms.create_scheduled_job(M.CreateScheduledJobDetails(
            compartment_id=compartment, display_name=f"job-{n % 4}", schedule_type="ONETIME",
            time_next_execution=at(days=10 + n), operation_type="UPDATEALL", update_type="ALL",
            managed_instance_groups=[M.Id(id=group.id, display_name="pages")])).data.id)
    first = osms.list_scheduled_jobs(compartment, limit=5)
    assert len(first.data) == 5 and first.has_next_page
    # (With --all, the CLI re-sorts the rows itself when --sort-by is given, and fails on
    # --sort-by TIMECREATED --sort-order: these summaries have no time_created. Not used here.)
    base = ("os-management", "scheduled-job", "list", "--compartment-id", compartment)
    variants = ([], ["--sort-order", "ASC"])
    whole, by_name, desc, oldest_first, *paged = oci_cli.each(
        # Without --page-size the CLI sends no limit, and osmd answers every row at once.
        (*base, "--all"),
        (*base, "--all", "--page-size", "3", "--sort-by", "DISPLAYNAME"),
        # Without --all: one page, in the server's order.
        (*base, "--sort-by", "DISPLAYNAME", "--sort-order", "DESC"),
        (*base, "--sort-by", "TIMECREATED", "--sort-order", "ASC"),
        *((*base, "--all", "--page-size", "5", *extra) for extra in variants))
    for extra, out in zip(variants, paged):
        rows = ids(out["data"])
        assert len(rows) == len(created) and sorted(rows) == sorted(created), extra
        assert "opc-next-page" not in out
    assert sorted(ids(whole["data"])) == sorted(created)
    # The CLI's own sort is stable, so its order is the server's when the server sorts right.
    sdk_order = oci.pagination.list_call_get_all_results(
        osms.list_scheduled_jobs, compartment, limit=3, sort_by="DISPLAYNAME").data
    assert ids(by_name["data"]) == [j.id for j in sdk_order]
    desc = desc["data"]
    assert [r["display-name"] for r in desc] == sorted((r["display-name"] for r in desc), reverse=True)
    assert ids(desc) == [j.id for j in osms.list_scheduled_jobs(compartment, sort_by="DISPLAYNAME",
                                                                 sort_order="DESC").data]
    assert ids(oldest_first["data"]) == created
    # --limit: the CLI's up-to-limit helper stops at that many rows.
    some = oci_cli("os-management", "scheduled-job", "list", "--compartment-id", compartment,
                   "--limit", "7", "--page-size", "3")["data"]
    assert len(some) == 7 and len(set(ids(some))) == 7


def test_update_with_etag_and_a_stale_one(oci_cli, osms, jobs):
    job_id = jobs["recurring-instance"]["id"]
    etag = osms.get_scheduled_job(job_id).headers["etag"]
    out = oci_cli("os-management", "scheduled-job", "update", "--scheduled-job-id", job_id, "--if-match", etag,
                  "--interval-type", "DAY", "--interval-value", "2", "--description", "every other day",
                  "--force")
    assert out["data"]["interval-value"] == "2" and out["etag"] != etag
    job = osms.get_scheduled_job(job_id).data
    assert (job.interval_type, job.interval_value, job.description) == ("DAY", "2", "every other day")
    assert job.update_type == "ALL" and job.operation_type == "UPDATEALL"
    err = oci_cli.fails("os-management", "scheduled-job", "update", "--scheduled-job-id", job_id,
                        "--if-match", etag, "--display-name", "stale", "--force")
    assert err["status"] == 412 and err["code"] == "NoEtagMatch", err
    assert osms.get_scheduled_job(job_id).data.display_name == "weekly everything"


def test_run_now_fires_on_every_group_member(oci_cli, osms, targets, jobs):
    compartment, fleet, group = targets
    job_id = jobs["recurring-group"]["id"]
    before = osms.get_scheduled_job(job_id).data
    assert not before.work_requests
    oci_cli("os-management", "scheduled-job", "run-now", "--scheduled-job-id", job_id)
    deadline = time.time() + 30
    while len(osms.get_scheduled_job(job_id).data.work_requests or []) < len(fleet.instances):
        assert time.time() < deadline, "run-now made no work requests"
        time.sleep(0.2)
    after = osms.get_scheduled_job(job_id).data
    # An extra run: the recurrence stays where it was.
    assert after.time_next_execution == before.time_next_execution
    targets_hit = set()
    for ref in after.work_requests:
        done = oci.wait_until(osms, osms.get_work_request(ref.id), "status", "SUCCEEDED",
                              max_wait_seconds=60, max_interval_seconds=1).data
        assert done.operation_type == "UPDATEALL"
        targets_hit.add(done.managed_instance_id.id)
    assert targets_hit == set(fleet.ids)


def test_skip_next_moves_a_recurring_job_by_one_interval(oci_cli, osms, jobs):
    job_id = jobs["recurring-group"]["id"]
    before = osms.get_scheduled_job(job_id).data.time_next_execution
    oci_cli("os-management", "scheduled-job", "skip-next-execution", "--scheduled-job-id", job_id)
    after = osms.get_scheduled_job(job_id).data.time_next_execution
    assert after - before == datetime.timedelta(days=1)


def test_skip_next_on_a_one_time_job_is_a_409(oci_cli, osms, jobs):
    job_id = jobs["once-instance"]["id"]
    before = osms.get_scheduled_job(job_id)
    started = time.monotonic()
    err = oci_cli.fails("os-management", "scheduled-job", "skip-next-execution", "--scheduled-job-id", job_id)
    elapsed = time.monotonic() - started
    assert err["status"] == 409, err
    assert err["code"] == "Conflict", err
    assert "runs once" in err["message"] and job_id in err["message"], err
    # A permanent refusal: the CLI gives up at once instead of retrying for minutes.
    assert elapsed < 20, f"the CLI took {elapsed:.0f} s to give up"
    after = osms.get_scheduled_job(job_id)
    assert after.data.time_next_execution == before.data.time_next_execution
    assert after.headers["etag"] == before.headers["etag"]


def test_delete(oci_cli, osms, targets, jobs):
    compartment, _, _ = targets
    job_id = jobs["once-group"]["id"]
    out = oci_cli("os-management", "scheduled-job", "delete", "--scheduled-job-id", job_id, "--force",
                  "--wait-for-state", "DELETED", "--wait-interval-seconds", "1", "--max-wait-seconds", "30")
    assert out is None or out["data"]["lifecycle-state"] == "DELETED"
    assert osms.get_scheduled_job(job_id).data.lifecycle_state == "DELETED"
    remaining = oci_cli("os-management", "scheduled-job", "list", "--compartment-id", compartment, "--all")["data"]
    assert job_id not in ids(remaining)
    assert {j.id for j in osms.list_scheduled_jobs(compartment).data} == set(ids(remaining))
