"""Asynchronous actions and their work requests through the real `oci` CLI 3.64.1 against
simulated instances: actions followed with `--wait-for-state` (the CLI reads
`opc-work-request-id` and re-sends GET /workRequests/{id} until the status matches), then
`work-request list` (filters, `--all` over pages), `get`, `list-logs` and `list-errors` on a
failing instance (osm-sim `--fail-ratio 1`). Every outcome is read back with the SDK."""
import datetime
import time

import oci
import pytest

M = oci.os_management.models
WAIT = ("--wait-interval-seconds", "1", "--max-wait-seconds", "90")


@pytest.fixture(scope="module")
def place(new_compartment, sim_fleet, osms):
    compartment = new_compartment("cli-work-requests")
    good = sim_fleet(compartment, 2, security_ratio=1, updates_per_instance=6)
    bad = sim_fleet(compartment, 1, fail_ratio=1)
    group = osms.create_managed_instance_group(M.CreateManagedInstanceGroupDetails(
        compartment_id=compartment, display_name="cli-wr-group")).data
    for i in good.instances:
        osms.attach_managed_instance_to_managed_instance_group(group.id, i.id)
    return compartment, good, bad, group


@pytest.fixture(scope="module")
def succeeded(oci_cli, osms, place):
    """install-all-updates SECURITY on the first good instance, waited for with the CLI."""
    _, good, _, _ = place
    instance = good.instances[0]
    assert osms.get_managed_instance(instance.id).data.security_updates_available > 0
    result = oci_cli.run("os-management", "managed-instance", "install-all-updates",
                         "--managed-instance-id", instance.id, "--update-type", "SECURITY",
                         "--wait-for-state", "SUCCEEDED", "--wait-for-state", "FAILED", *WAIT)
    assert result.returncode == 0, result.stderr
    assert "Waiting until the work request has entered state" in result.stderr, result.stderr
    return instance, result.data


@pytest.fixture(scope="module")
def failed(oci_cli, place):
    """install-package on the instance whose simulator fails every action."""
    _, _, bad, _ = place
    instance = bad.instances[0]
    out = oci_cli("os-management", "managed-instance", "install-package", "--managed-instance-id", instance.id,
                  "--package-name", "nginx-1.22.1-9", "--wait-for-state", "SUCCEEDED",
                  "--wait-for-state", "FAILED", *WAIT)
    return instance, out["data"]


def test_install_all_updates_waits_until_succeeded(osms, succeeded):
    instance, wr = succeeded
    assert wr["status"] == "SUCCEEDED" and wr["percent-complete"] == 100
    assert wr["managed-instance-id"]["id"] == instance.id
    sdk = osms.get_work_request(wr["id"]).data
    assert sdk.status == "SUCCEEDED" and sdk.operation_type == "UPDATEALL"
    assert sdk.time_finished is not None
    # The simulator applied the security updates and reported its new inventory.
    deadline = time.time() + 30
    while osms.get_managed_instance(instance.id).data.security_updates_available != 0:
        assert time.time() < deadline, "the security updates are still pending"
        time.sleep(0.2)
    remaining = osms.list_available_updates_for_managed_instance(instance.id).data
    assert remaining and all(u.update_type != "SECURITY" for u in remaining)


def test_failing_action_waits_until_failed(osms, failed):
    instance, wr = failed
    assert wr["status"] == "FAILED"
    sdk = osms.get_work_request(wr["id"]).data
    assert sdk.status == "FAILED" and sdk.operation_type == "INSTALL"
    assert sdk.managed_instance_id.id == instance.id


def test_waiting_for_a_state_that_never_comes_exits_2(oci_cli, osms, place):
    _, _, bad, _ = place
    result = oci_cli.run("os-management", "managed-instance", "install-package", "--managed-instance-id",
                         bad.ids[0], "--package-name", "curl", "--wait-for-state", "SUCCEEDED",
                         "--wait-interval-seconds", "1", "--max-wait-seconds", "4")
    assert result.returncode == 2, result.stderr
    assert "Failed to wait until the work request entered the specified state" in result.stderr
    # The request itself went on to FAILED.
    mine = [w for w in osms.list_work_requests(bad.compartment, managed_instance_id=bad.ids[0]).data
            if w.description and "curl" in w.description]
    assert len(mine) == 1, [w.description for w in mine]
    done = oci.wait_until(osms, osms.get_work_request(mine[0].id), "status", "FAILED",
                          max_wait_seconds=30, max_interval_seconds=1).data
    assert done.managed_instance_id.id == bad.ids[0] and done.operation_type == "INSTALL"


def test_group_action_waits_for_its_children(oci_cli, osms, place):
    _, good, _, group = place
    out = oci_cli("os-management", "managed-instance-group", "install-all-updates",
                  "--managed-instance-group-id", group.id, "--update-type", "ALL",
                  "--wait-for-state", "SUCCEEDED", *WAIT)
    parent = osms.get_work_request(out["data"]["id"]).data
    assert parent.status == "SUCCEEDED" and parent.percent_complete == 100
    assert sorted(out["data"]["children-ids"]) == sorted(parent.children_ids)
    children = [osms.get_work_request(c).data for c in parent.children_ids]
    assert sorted(c.managed_instance_id.id for c in children) == sorted(good.ids)
    assert all(c.status == "SUCCEEDED" and c.parent_id == parent.id for c in children)


def test_update_all_on_an_empty_group_fails_at_once(oci_cli, osms, place):
    compartment = place[0]
    empty = osms.create_managed_instance_group(M.CreateManagedInstanceGroupDetails(
        compartment_id=compartment, display_name="cli-wr-empty")).data
    before = {w.id for w in osms.list_work_requests(compartment).data}
    started = time.monotonic()
    err = oci_cli.fails("os-management", "managed-instance-group", "install-all-updates",
                        "--managed-instance-group-id", empty.id, "--wait-for-state", "SUCCEEDED", *WAIT)
    elapsed = time.monotonic() - started
    assert err["status"] == 409 and err["code"] == "Conflict", err
    assert "no members" in err["message"], err
    # A permanent refusal: not retried by the CLI for a minute and a half.
    assert elapsed < 20, f"the CLI took {elapsed:.0f} s to give up"
    assert {w.id for w in osms.list_work_requests(compartment).data} == before


def test_get_matches_the_sdk(oci_cli, osms, succeeded):
    _, wr = succeeded
    got = oci_cli("os-management", "work-request", "get", "--work-request-id", wr["id"])
    sdk = osms.get_work_request(wr["id"])
    assert got["etag"] == sdk.headers["etag"]
    data, w = got["data"], sdk.data
    assert (data["id"], data["status"], data["operation-type"], data["compartment-id"], data["description"]) == \
        (w.id, w.status, w.operation_type, w.compartment_id, w.description)
    assert [r["identifier"] for r in data["resources"]] == [r.identifier for r in w.resources]
    for key, value in (("time-accepted", w.time_accepted), ("time-started", w.time_started),
                       ("time-finished", w.time_finished)):
        assert datetime.datetime.fromisoformat(data[key]) == value, key
    err = oci_cli.fails("os-management", "work-request", "get", "--work-request-id",
                        "ocid1.osmsworkrequest.oc1..doesnotexist")
    assert err["status"] == 404 and err["code"] == "NotAuthorizedOrNotFound"


def test_list_filters_and_pages(oci_cli, osms, place, succeeded, failed):
    compartment, good, bad, _ = place
    everything = {w.id: w for w in oci.pagination.list_call_get_all_results(
        osms.list_work_requests, compartment).data}
    assert succeeded[1]["id"] in everything and failed[1]["id"] in everything
    base = ("os-management", "work-request", "list", "--compartment-id", compartment)
    description = everything[succeeded[1]["id"]].description
    # (With --all and --sort-by DISPLAYNAME the CLI re-sorts by display_name, which work
    # requests do not have, and fails: not used.)
    variants = (["--page-size", "2"], ["--page-size", "1", "--sort-order", "ASC"])
    listed, by_instance, named, linux, windows, *paged = oci_cli.each(
        (*base, "--all"),
        (*base, "--all", "--managed-instance-id", bad.ids[0]),
        (*base, "--all", "--display-name", description),
        (*base, "--all", "--os-family", "LINUX"),
        (*base, "--all", "--os-family", "WINDOWS"),
        *((*base, "--all", *extra) for extra in variants))
    assert sorted(w["id"] for w in listed["data"]) == sorted(everything)
    assert len(everything) >= 4
    for extra, out in zip(variants, paged):
        assert sorted(w["id"] for w in out["data"]) == sorted(everything), extra
    by_instance = by_instance["data"]
    assert failed[1]["id"] in [w["id"] for w in by_instance]
    assert sorted(w["id"] for w in by_instance) == sorted(
        i for i in everything if (osms.get_work_request(i).data.managed_instance_id or M.Id()).id == bad.ids[0])
    named = named["data"]
    assert sorted(w["id"] for w in named) == sorted(i for i, w in everything.items() if w.description == description)
    assert succeeded[1]["id"] in [w["id"] for w in named]
    assert sorted(w["id"] for w in linux["data"]) == sorted(everything)
    assert windows is None or windows["data"] == []
    # One page without --all: the next page is announced, not followed.
    one = oci_cli.run(*base, "--limit", "1")
    assert one.returncode == 0 and len(one.data) == 1


def test_logs_of_a_succeeded_request(oci_cli, osms, succeeded):
    _, wr = succeeded
    sdk = [l.message for l in osms.list_work_request_logs(wr["id"], sort_order="ASC").data]
    logs = oci_cli("os-management", "work-request", "list-logs", "--work-request-id", wr["id"], "--all",
                   "--page-size", "1", "--sort-order", "ASC")["data"]
    assert [l["message"] for l in logs] == sdk
    assert len(sdk) >= 2 and any(m.startswith("simulated:") for m in sdk)
    assert all(l["timestamp"] for l in logs)
    errors = oci_cli("os-management", "work-request", "list-errors", "--work-request-id", wr["id"], "--all")
    assert errors is None or errors["data"] == []


def test_logs_and_errors_of_a_failed_request(oci_cli, osms, failed):
    _, wr = failed
    errors = oci_cli("os-management", "work-request", "list-errors", "--work-request-id", wr["id"], "--all",
                     "--page-size", "1")["data"]
    sdk = osms.list_work_request_errors(wr["id"]).data
    assert [(e["code"], e["message"]) for e in errors] == [(e.code, e.message) for e in sdk]
    assert "SimulatedFailure" in [e["code"] for e in errors]
    assert all(e["message"] for e in errors)
    logs = oci_cli("os-management", "work-request", "list-logs", "--work-request-id", wr["id"], "--all")["data"]
    assert sorted(l["message"] for l in logs) == sorted(l.message for l in osms.list_work_request_logs(wr["id"]).data)
    assert any("simulated:" in l["message"] for l in logs)
