import oci


def test_tenancy_and_root_compartment(osmd, identity):
    t = identity.get_tenancy(osmd.tenancy).data
    assert t.id == osmd.tenancy and t.id.startswith("ocid1.tenancy.")
    root = identity.get_compartment(osmd.tenancy).data
    assert root.id == osmd.tenancy
    assert root.lifecycle_state == "ACTIVE"


def test_compartment_tree_recursively(osmd, identity):
    mk = lambda parent, name: identity.create_compartment(oci.identity.models.CreateCompartmentDetails(
        compartment_id=parent, name=name, description="tree")).data
    top = mk(osmd.tenancy, "tree-top")
    mid = mk(top.id, "tree-mid")
    leaf = mk(mid.id, "tree-leaf")
    everything = oci.pagination.list_call_get_all_results(
        identity.list_compartments, osmd.tenancy, compartment_id_in_subtree=True,
        access_level="ANY", lifecycle_state="ACTIVE").data
    ids = {c.id for c in everything}
    assert {top.id, mid.id, leaf.id} <= ids
    assert osmd.tenancy not in ids, "the root is never listed"
    direct = identity.list_compartments(top.id).data
    assert [c.id for c in direct] == [mid.id]
    assert identity.get_compartment(leaf.id).data.compartment_id == mid.id
    # The CLI-style paging with a small page size sees the same tree.
    paged = oci.pagination.list_call_get_all_results(
        identity.list_compartments, osmd.tenancy, compartment_id_in_subtree=True, limit=2).data
    assert {c.id for c in paged} == ids


def test_update_and_delete_compartment(osmd, identity, osms):
    c = identity.create_compartment(oci.identity.models.CreateCompartmentDetails(
        compartment_id=osmd.tenancy, name="to-delete", description="x")).data
    updated = identity.update_compartment(c.id, oci.identity.models.UpdateCompartmentDetails(description="y")).data
    assert updated.description == "y"
    group = osms.create_managed_instance_group(oci.os_management.models.CreateManagedInstanceGroupDetails(
        compartment_id=c.id, display_name="holder")).data
    try:
        identity.delete_compartment(c.id)
        raise AssertionError("deleting a compartment that holds a group must fail")
    except oci.exceptions.ServiceError as e:
        assert e.status == 409
    osms.delete_managed_instance_group(group.id)
    identity.delete_compartment(c.id)
    assert identity.get_compartment(c.id).data.lifecycle_state == "DELETED"
