"""The `oci` CLI 3.64.1 and a third-party SDK script, unmodified, against osmd."""
import json
import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]
OCI = str(pathlib.Path(sys.executable).parent / "oci")
REPORT = REPO.parent / "shared" / "clients" / "compliance_report.py"


def cli(osmd, *args):
    env = dict(os.environ, OCI_CLI_SUPPRESS_FILE_PERMISSIONS_WARNING="True", SUPPRESS_LABEL_WARNING="True",
               REQUESTS_CA_BUNDLE=osmd.ca)
    out = subprocess.run([OCI, "--config-file", osmd.config_file, *args], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout) if out.stdout.strip() else None


def test_cli_lists_and_creates(osmd, compartment):
    compartments = cli(osmd, "iam", "compartment", "list", "--all", "--compartment-id-in-subtree", "true")
    assert any(c["id"] == compartment for c in compartments["data"])
    created = cli(osmd, "os-management", "managed-instance-group", "create",
                  "--compartment-id", compartment, "--display-name", "from-cli")
    assert created["data"]["lifecycle-state"] == "ACTIVE"
    assert created["etag"]
    groups = cli(osmd, "os-management", "managed-instance-group", "list", "--compartment-id", compartment, "--all")
    assert [g["display-name"] for g in groups["data"]] == ["from-cli"]
    jobs = cli(osmd, "os-management", "scheduled-job", "list", "--compartment-id", compartment, "--all")
    assert jobs is None or jobs.get("data", []) == []


def test_compliance_report_script_on_an_empty_fleet(osmd):
    assert REPORT.exists(), f"the third-party client is expected at {REPORT}"
    env = dict(os.environ, REQUESTS_CA_BUNDLE=osmd.ca)
    for extra in ([], ["-R"]):
        out = subprocess.run([sys.executable, str(REPORT), "-C", osmd.config_file, "-c", osmd.tenancy, *extra],
                             env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "Detected out of 0 managed instance, None is missing security patches!" in out.stdout, out.stdout
