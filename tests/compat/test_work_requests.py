import oci


def test_list_work_requests(osms, osmd):
    # Nothing runs yet in a fresh osmd: the list is a real, empty JSON array.
    response = osms.list_work_requests(osmd.tenancy)
    assert response.data == []
    assert not response.has_next_page
    everything = oci.pagination.list_call_get_all_results(osms.list_work_requests, osmd.tenancy, limit=5).data
    assert everything == []


def test_unknown_work_request(osms):
    try:
        osms.get_work_request("ocid1.osmsworkrequest.oc1..doesnotexist")
        raise AssertionError("expected a 404")
    except oci.exceptions.ServiceError as e:
        assert e.status == 404 and e.code == "NotAuthorizedOrNotFound"
