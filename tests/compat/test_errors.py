import email.utils

import oci
import pytest
from oci._vendor import requests  # the SDK's own copy


def test_not_found_is_a_service_error(osms):
    with pytest.raises(oci.exceptions.ServiceError) as err:
        osms.get_managed_instance_group("ocid1.osmsmanagedinstancegroup.oc1..doesnotexist")
    e = err.value
    assert e.status == 404
    assert e.code == "NotAuthorizedOrNotFound"
    assert e.request_id
    with pytest.raises(oci.exceptions.ServiceError) as err:
        osms.get_managed_instance("ocid1.instance.oc1..doesnotexist")
    assert err.value.status == 404


def test_bad_request_is_a_service_error(osms, osmd):
    with pytest.raises(oci.exceptions.ServiceError) as err:
        osms.list_managed_instance_groups(osmd.tenancy, limit=0)
    assert err.value.status == 400 and err.value.code == "InvalidParameter"
    assert "limit" in err.value.message
    with pytest.raises(oci.exceptions.ServiceError) as err:
        osms.list_managed_instance_groups("not-an-ocid")
    assert err.value.status == 400


def test_unsigned_and_tampered_requests_get_401(osmd):
    url = f"https://127.0.0.1:{osmd.port}/20190801/managedInstanceGroups?compartmentId={osmd.tenancy}"
    r = requests.get(url, verify=osmd.ca)
    assert r.status_code == 401
    assert r.json()["code"] == "NotAuthenticated"
    assert r.headers["opc-request-id"]
    # Sign for one URL, send to another.
    signer = oci.signer.Signer(osmd.config["tenancy"], osmd.config["user"], osmd.config["fingerprint"],
                               osmd.config["key_file"])
    prepared = requests.Request("GET", url).prepare()
    signer(prepared)
    prepared.url = url + "&displayName=other"
    r = requests.Session().send(prepared, verify=osmd.ca)
    assert r.status_code == 401


def test_empty_fleet_lists(osms, osmd):
    instances = osms.list_managed_instances(osmd.tenancy).data
    assert instances == []


def test_instances_list_and_date_header(osmd):
    # The CLI's clock-skew hint reads the Date header of a 401.
    r = requests.get(f"https://127.0.0.1:{osmd.port}/20190801/managedInstances", verify=osmd.ca)
    assert r.status_code == 401
    assert email.utils.parsedate_to_datetime(r.headers["date"])
