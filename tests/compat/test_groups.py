import oci
import pytest

M = oci.os_management.models


def test_group_crud_with_etags(osms, compartment):
    g = osms.create_managed_instance_group(M.CreateManagedInstanceGroupDetails(
        compartment_id=compartment, display_name="web", description="front", os_family="LINUX",
        freeform_tags={"team": "a"}))
    group = g.data
    assert group.lifecycle_state == "ACTIVE" and group.freeform_tags == {"team": "a"}
    etag = g.headers["etag"]
    got = osms.get_managed_instance_group(group.id)
    assert got.data.display_name == "web" and got.headers["etag"] == etag
    upd = osms.update_managed_instance_group(group.id, M.UpdateManagedInstanceGroupDetails(display_name="web-2"), if_match=etag)
    assert upd.data.display_name == "web-2"
    with pytest.raises(oci.exceptions.ServiceError) as stale:
        osms.update_managed_instance_group(group.id, M.UpdateManagedInstanceGroupDetails(display_name="web-3"), if_match=etag)
    assert stale.value.status == 412 and stale.value.code == "NoEtagMatch"
    summaries = osms.list_managed_instance_groups(compartment).data
    assert [s.display_name for s in summaries] == ["web-2"]
    assert summaries[0].managed_instance_count == 0
    osms.delete_managed_instance_group(group.id)
    assert osms.list_managed_instance_groups(compartment).data == []


def test_change_compartment_and_attach_unknown_instance(osms, identity, osmd, compartment):
    other = identity.create_compartment(oci.identity.models.CreateCompartmentDetails(
        compartment_id=osmd.tenancy, name=f"other-{compartment[-8:]}", description="x")).data
    group = osms.create_managed_instance_group(M.CreateManagedInstanceGroupDetails(
        compartment_id=compartment, display_name="mover")).data
    osms.change_managed_instance_group_compartment(group.id, M.ChangeManagedInstanceGroupCompartmentDetails(compartment_id=other.id))
    assert osms.get_managed_instance_group(group.id).data.compartment_id == other.id
    with pytest.raises(oci.exceptions.ServiceError) as err:
        osms.attach_managed_instance_to_managed_instance_group(group.id, "ocid1.instance.oc1..doesnotexist")
    assert err.value.status in (400, 404)


def test_pagination_over_several_pages(osms, compartment):
    for i in range(25):
        osms.create_managed_instance_group(M.CreateManagedInstanceGroupDetails(
            compartment_id=compartment, display_name=f"page-{i:02d}"))
    first = osms.list_managed_instance_groups(compartment, limit=10)
    assert len(first.data) == 10 and first.has_next_page
    everything = oci.pagination.list_call_get_all_results(
        osms.list_managed_instance_groups, compartment, limit=10, sort_by="DISPLAYNAME").data
    names = [g.display_name for g in everything]
    assert names == [f"page-{i:02d}" for i in range(25)]
    some = oci.pagination.list_call_get_up_to_limit(
        osms.list_managed_instance_groups, 15, 4, compartment).data
    assert len(some) == 15
    # Without limit, one call returns every row and no next page.
    whole = osms.list_managed_instance_groups(compartment)
    assert len(whole.data) == 25 and not whole.has_next_page


def test_create_is_idempotent_with_a_retry_token(osms, compartment):
    details = M.CreateManagedInstanceGroupDetails(compartment_id=compartment, display_name="once")
    a = osms.create_managed_instance_group(details, opc_retry_token="compat-token-1").data
    b = osms.create_managed_instance_group(details, opc_retry_token="compat-token-1").data
    assert a.id == b.id
    assert len(osms.list_managed_instance_groups(compartment).data) == 1
