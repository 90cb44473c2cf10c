"""Managed instances and managed instance groups through the real `oci` CLI 3.64.1 against
simulated instances: list (`--all` over pages), get, update; groups create, list, get, update
with etags, attach, detach, delete. Every outcome is read back with the SDK."""
import json

import oci
import pytest

M = oci.os_management.models
FLEET = 5


@pytest.fixture(scope="module")
def fleet(new_compartment, sim_fleet):
    return sim_fleet(new_compartment("cli-fleet"), FLEET, security_ratio=0.5, updates_per_instance=4)


def test_instance_list_walks_every_page_once(oci_cli, osms, fleet):
    base = ("os-management", "managed-instance", "list", "--compartment-id", fleet.compartment)
    assert osms.list_managed_instances(fleet.compartment, limit=2).has_next_page
    variants = (["--page-size", "2"], ["--page-size", "1", "--sort-order", "ASC"])
    whole, by_name, named, linux, *paged = oci_cli.each(
        (*base, "--all"),
        (*base, "--all", "--page-size", "2", "--sort-by", "DISPLAYNAME", "--sort-order", "DESC"),
        (*base, "--display-name", fleet.instances[1].display_name),
        (*base, "--all", "--os-family", "LINUX"),
        *((*base, "--all", *extra) for extra in variants))
    whole = whole["data"]
    assert sorted(i["id"] for i in whole) == sorted(fleet.ids)
    for extra, rows in zip(variants, paged):
        rows = rows["data"]
        assert len(rows) == FLEET and sorted(i["id"] for i in rows) == sorted(fleet.ids), extra
    assert [i["display-name"] for i in by_name["data"]] == sorted((i.display_name for i in fleet.instances), reverse=True)
    assert [i["id"] for i in named["data"]] == [fleet.ids[1]]
    assert len(linux["data"]) == FLEET
    for row in whole:
        assert row["os-family"] == "LINUX" and row["status"] == "NORMAL"
        assert isinstance(row["updates-available"], int)


def test_instance_get_matches_the_sdk(oci_cli, osms, fleet):
    instance = fleet.instances[0]
    got = oci_cli("os-management", "managed-instance", "get", "--managed-instance-id", instance.id)
    sdk = osms.get_managed_instance(instance.id)
    assert got["etag"] == sdk.headers["etag"]
    data, mi = got["data"], sdk.data
    assert (data["id"], data["display-name"], data["compartment-id"], data["os-family"]) == \
        (mi.id, mi.display_name, mi.compartment_id, mi.os_family)
    assert (data["updates-available"], data["security-updates-available"]) == \
        (mi.updates_available, mi.security_updates_available)
    assert data["updates-available"] == 4
    assert (data["os-name"], data["os-version"], data["os-kernel-version"]) == (mi.os_name, mi.os_version, mi.os_kernel_version)
    err = oci_cli.fails("os-management", "managed-instance", "get", "--managed-instance-id",
                        "ocid1.instance.oc1..doesnotexist")
    assert err["status"] == 404 and err["code"] == "NotAuthorizedOrNotFound"


def test_instance_update(oci_cli, osms, fleet):
    instance = fleet.instances[-1]
    etag = osms.get_managed_instance(instance.id).headers["etag"]
    topic = "ocid1.onstopic.oc1..compattopic"
    out = oci_cli("os-management", "update-managed-instance-details", "update-managed-instance",
                  "--managed-instance-id", instance.id, "--notification-topic-id", topic,
                  "--is-data-collection-authorized", "true", "--if-match", etag)
    assert out["data"]["notification-topic-id"] == topic and out["etag"] != etag
    mi = osms.get_managed_instance(instance.id).data
    assert mi.notification_topic_id == topic and mi.is_data_collection_authorized is True
    err = oci_cli.fails("os-management", "update-managed-instance-details", "update-managed-instance",
                        "--managed-instance-id", instance.id, "--is-data-collection-authorized", "false",
                        "--if-match", etag)
    assert err["status"] == 412 and err["code"] == "NoEtagMatch"
    assert osms.get_managed_instance(instance.id).data.is_data_collection_authorized is True


def test_group_lifecycle(oci_cli, osms, fleet):
    compartment = fleet.compartment
    group = "os-management", "managed-instance-group"
    created = oci_cli(*group, "create", "--compartment-id", compartment, "--display-name", "cli-web",
                      "--description", "front ends", "--os-family", "LINUX", "--freeform-tags", '{"tier": "web"}')
    gid = created["data"]["id"]
    assert created["etag"] and created["data"]["lifecycle-state"] == "ACTIVE"
    sdk = osms.get_managed_instance_group(gid).data
    assert (sdk.display_name, sdk.description, sdk.os_family, sdk.freeform_tags) == \
        ("cli-web", "front ends", "LINUX", {"tier": "web"})

    listed = oci_cli(*group, "list", "--compartment-id", compartment, "--all", "--lifecycle-state", "ACTIVE")["data"]
    assert gid in [g["id"] for g in listed]
    assert [g["id"] for g in oci_cli(*group, "list", "--compartment-id", compartment,
                                     "--display-name", "cli-web")["data"]] == [gid]

    for i in fleet.ids[:3]:
        assert oci_cli(*group, "attach", "--managed-instance-group-id", gid, "--managed-instance-id", i) is None
    got = oci_cli(*group, "get", "--managed-instance-group-id", gid)
    assert sorted(m["id"] for m in got["data"]["managed-instances"]) == sorted(fleet.ids[:3])
    assert sorted(m.id for m in osms.get_managed_instance_group(gid).data.managed_instances) == sorted(fleet.ids[:3])
    assert [g.id for g in osms.get_managed_instance(fleet.ids[0]).data.managed_instance_groups] == [gid]
    summary = [g for g in osms.list_managed_instance_groups(compartment).data if g.id == gid]
    assert summary[0].managed_instance_count == 3

    oci_cli(*group, "detach", "--managed-instance-group-id", gid, "--managed-instance-id", fleet.ids[1])
    assert sorted(m.id for m in osms.get_managed_instance_group(gid).data.managed_instances) == \
        sorted([fleet.ids[0], fleet.ids[2]])
    assert osms.get_managed_instance(fleet.ids[1]).data.managed_instance_groups in (None, [])
    err = oci_cli.fails(*group, "attach", "--managed-instance-group-id", gid,
                        "--managed-instance-id", "ocid1.instance.oc1..doesnotexist")
    assert err["status"] in (400, 404), err

    etag = osms.get_managed_instance_group(gid).headers["etag"]
    updated = oci_cli(*group, "update", "--managed-instance-group-id", gid, "--display-name", "cli-web-2",
                      "--freeform-tags", '{"tier": "edge"}', "--if-match", etag, "--force")
    assert updated["data"]["display-name"] == "cli-web-2"
    sdk = osms.get_managed_instance_group(gid).data
    assert (sdk.display_name, sdk.freeform_tags, sdk.description) == ("cli-web-2", {"tier": "edge"}, "front ends")
    err = oci_cli.fails(*group, "update", "--managed-instance-group-id", gid, "--display-name", "stale",
                        "--if-match", etag, "--force")
    assert err["status"] == 412 and err["code"] == "NoEtagMatch"

    oci_cli(*group, "delete", "--managed-instance-group-id", gid, "--force")
    remaining = oci_cli(*group, "list", "--compartment-id", compartment, "--all")
    assert gid not in [g["id"] for g in (remaining or {}).get("data", [])]
    assert gid not in [g.id for g in osms.list_managed_instance_groups(compartment).data]
    assert osms.get_managed_instance(fleet.ids[0]).data.managed_instance_groups in (None, [])


def test_group_list_walks_every_page_once(oci_cli, osms, new_compartment):
    compartment = new_compartment("cli-groups-pages")
    made = [osms.create_managed_instance_group(M.CreateManagedInstanceGroupDetails(
        compartment_id=compartment, display_name=f"g-{n % 3}")).data.id for n in range(11)]
    assert osms.list_managed_instance_groups(compartment, limit=4).has_next_page
    base = ("os-management", "managed-instance-group", "list", "--compartment-id", compartment, "--all")
    variants = (["--page-size", "4"], [])
    by_name, *paged = oci_cli.each((*base, "--page-size", "2", "--sort-by", "DISPLAYNAME"),
                                   *((*base, *extra) for extra in variants))
    for extra, rows in zip(variants, paged):
        rows = rows["data"]
        assert len(rows) == len(made) and sorted(g["id"] for g in rows) == sorted(made), extra
    by_name = by_name["data"]
    assert [g["display-name"] for g in by_name] == sorted(f"g-{n % 3}" for n in range(11))
    assert all(json.dumps(g["managed-instance-count"]) == "0" for g in by_name)
