"""The ways the README gives to point an unmodified oci SDK script and the oci CLI at osmd
(reference §9): the admin profile's `region=@host:port` (every other test), the CLI's
`--endpoint`, and a local realm domain (`OCI_DEFAULT_REALM`, or `~/.oci/regions-config.json`)
with host names that resolve to osmd. Name resolution for `*.local-1.oci.localhost` comes from
a private /etc/hosts bind-mounted in a mount namespace of the test's own (`unshare -m`, as the
reference's experiments did), so the machine's files are never touched. And what an operation
osmd does not serve looks like to the CLI."""
import json
import pathlib
import re
import subprocess
import sys

import oci
import pytest

SCRIPT = """
import oci, sys
config = oci.config.from_file(sys.argv[1])
osms = oci.os_management.OsManagementClient(config)
groups = osms.list_managed_instance_groups(config["tenancy"]).data
subtree = oci.identity.IdentityClient(config).list_compartments(config["tenancy"], compartment_id_in_subtree=True).data
print(json.dumps({"endpoint": osms.base_client.endpoint, "groups": [g.id for g in groups], "compartments": len(subtree)}))
""".replace("import oci, sys", "import json, oci, sys")


@pytest.fixture(scope="module")
def local_region(osmd, tmp_path_factory):
    """A copy of the admin profile naming a region the SDK does not know, a hosts file for the
    names it then builds, and a home with a regions-config.json for that region."""
    place = tmp_path_factory.mktemp("endpoints")
    text = pathlib.Path(osmd.config_file).read_text()
    assert re.search(r"^region=@127\.0\.0\.1:\d+$", text, re.M), text
    config = place / "config"
    config.write_text(re.sub(r"^region=.*$", "region=local-1", text, flags=re.M))
    hosts = place / "hosts"
    hosts.write_text("127.0.0.1 localhost\n127.0.0.1 osms.local-1.oci.localhost identity.local-1.oci.localhost\n")
    home = place / "home"
    (home / ".oci").mkdir(parents=True)
    (home / ".oci" / "regions-config.json").write_text(json.dumps([{
        "realmKey": "oc99", "realmDomainComponent": f"localhost:{osmd.port}",
        "regionKey": "LCL", "regionIdentifier": "local-1"}]))
    return config, hosts, home


def with_hosts(hosts, cmd):
    return ["unshare", "-m", "sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"', str(hosts), *cmd]


def run(cmd, env):
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


@pytest.fixture(scope="module")
def a_group(osms, osmd):
    return osms.create_managed_instance_group(oci.os_management.models.CreateManagedInstanceGroupDetails(
        compartment_id=osmd.tenancy, display_name="endpoint-check")).data.id


def test_cli_endpoint_flag(oci_cli, osmd, local_region, a_group):
    config, _, _ = local_region
    endpoint = f"https://127.0.0.1:{osmd.port}"
    # The profile's region alone would lead to osms.local-1.oraclecloud.com: --endpoint wins.
    groups = oci_cli("--endpoint", endpoint, "os-management", "managed-instance-group", "list",
                     "--compartment-id", osmd.tenancy, "--all", config=config)["data"]
    assert a_group in [g["id"] for g in groups]
    compartments = oci_cli("--endpoint", endpoint, "iam", "compartment", "list", "--all", config=config)
    children = oci.identity.IdentityClient(osmd.config).list_compartments(osmd.tenancy).data
    assert sorted(c["id"] for c in (compartments or {}).get("data", [])) == sorted(c.id for c in children)


@pytest.mark.parametrize("how", ["OCI_DEFAULT_REALM", "regions-config.json"])
def test_local_realm_domain(oci_cli, osmd, local_region, a_group, how):
    config, hosts, home = local_region
    env = dict(oci_cli.env)
    if how == "OCI_DEFAULT_REALM":
        env["OCI_DEFAULT_REALM"] = f"localhost:{osmd.port}"
    else:
        env["HOME"] = str(home)
    sdk = json.loads(run(with_hosts(hosts, [sys.executable, "-c", SCRIPT, str(config)]), env))
    assert sdk["endpoint"] == f"https://osms.local-1.oci.localhost:{osmd.port}/20190801"
    assert a_group in sdk["groups"]
    cli = run(with_hosts(hosts, [oci_cli.binary, "--config-file", str(config), "os-management",
                                 "managed-instance-group", "list", "--compartment-id", osmd.tenancy, "--all"]), env)
    assert a_group in [g["id"] for g in json.loads(cli)["data"]]


def test_an_operation_osmd_does_not_serve_is_a_plain_404(oci_cli, osmd):
    # Software sources (reference §3.8) are out of scope: the CLI gets one clear 404 at once.
    err = oci_cli.fails("os-management", "software-source", "list", "--compartment-id", osmd.tenancy)
    assert err["status"] == 404 and err["code"] == "NotFound"
    assert "softwareSources" in err["message"]
