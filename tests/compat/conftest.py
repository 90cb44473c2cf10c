"""Starts one osmd for the session and hands tests the real `oci` SDK, configured exactly as an
operator would: the administrator's config file that osmd wrote, and REQUESTS_CA_BUNDLE."""
import concurrent.futures
import itertools
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import tempfile
import time

import oci
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Osmd:
    def __init__(self, data_dir, port, proc):
        self.data_dir = pathlib.Path(data_dir)
        self.port = port
        self.proc = proc
        self.config_file = str(self.data_dir / "admin" / "config")
        self.ca = str(self.data_dir / "tls" / "ca.pem")

    @property
    def config(self):
        return oci.config.from_file(self.config_file)

    @property
    def tenancy(self):
        return self.config["tenancy"]


@pytest.fixture(scope="session")
def osmd():
    binary = os.environ.get("OSMD_BIN", str(REPO / "target" / "debug" / "osmd"))
    data_dir = tempfile.mkdtemp(prefix="osm-compat-")
    port = free_port()
    log = open(os.path.join(data_dir, "osmd.log"), "w")
    proc = subprocess.Popen(
        [binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data_dir],
        stdout=log, stderr=subprocess.STDOUT)
    server = Osmd(data_dir, port, proc)
    deadline = time.time() + 30
    while not os.path.exists(server.config_file) or not os.path.exists(server.ca):
        assert proc.poll() is None, open(os.path.join(data_dir, "osmd.log")).read()
        assert time.time() < deadline, "osmd did not start"
        time.sleep(0.1)
    from oci._vendor import requests
    while True:
        try:
            if requests.get(f"https://127.0.0.1:{port}/healthz", verify=server.ca, timeout=2).status_code == 200:
                break
        except requests.RequestException:
            pass
        assert time.time() < deadline, "osmd /healthz never answered"
        time.sleep(0.1)
    # The only thing an operator sets: trust osmd's CA.
    os.environ["REQUESTS_CA_BUNDLE"] = server.ca
    yield server
    proc.send_signal(signal.SIGTERM)
    try:
        assert proc.wait(timeout=20) == 0, "osmd did not exit cleanly on SIGTERM"
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.fixture(scope="session")
def identity(osmd):
    return oci.identity.IdentityClient(osmd.config)


@pytest.fixture(scope="session")
def osms(osmd):
    return oci.os_management.OsManagementClient(osmd.config)


@pytest.fixture
def compartment(osmd, identity):
    """A fresh compartment under the tenancy, so tests do not see each other's resources."""
    name = f"t{time.time_ns()}"
    details = oci.identity.models.CreateCompartmentDetails(
        compartment_id=osmd.tenancy, name=name, description="compat test")
    return identity.create_compartment(details).data.id


# --- The `oci` CLI and simulated fleets, shared by the CLI and compliance-script tests. ---

OCI_CLI = str(pathlib.Path(sys.executable).parent / "oci")
SIM_BIN = os.environ.get("OSM_SIM_BIN", str(REPO / "target" / "debug" / "osm-sim"))


class CliResult:
    def __init__(self, args, proc):
        self.args = args
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr

    @property
    def json(self):
        return json.loads(self.stdout) if self.stdout.strip() else None

    @property
    def data(self):
        body = self.json
        return None if body is None else body.get("data")

    @property
    def service_error(self):
        """The CLI prints a refused call as `ServiceError:` and the error as JSON on stderr."""
        marker = "ServiceError:"
        assert marker in self.stderr, f"no ServiceError in: {self.stderr}"
        return json.loads(self.stderr[self.stderr.index(marker) + len(marker):])


class OciCli:
    """The venv's real `oci` CLI 3.64.1, pointed at osmd only by `--config-file` (the admin
    profile osmd wrote) and REQUESTS_CA_BUNDLE, as an operator would run it."""

    def __init__(self, osmd):
        self.osmd = osmd
        self.binary = OCI_CLI
        self.env = dict(os.environ, REQUESTS_CA_BUNDLE=osmd.ca,
                        OCI_CLI_SUPPRESS_FILE_PERMISSIONS_WARNING="True", SUPPRESS_LABEL_WARNING="True")
        # A throw-away rc file and home, so no operator setting on this machine leaks in.
        home = osmd.data_dir / "cli-home"
        home.mkdir(exist_ok=True)
        self.env["HOME"] = str(home)
        self.env.pop("OCI_CLI_RC_FILE", None)

    def run(self, *args, config=None, env=None, timeout=180):
        cmd = [OCI_CLI, "--config-file", str(config or self.osmd.config_file), *[str(a) for a in args]]
        proc = subprocess.run(cmd, env=env or self.env, capture_output=True, text=True, timeout=timeout)
        return CliResult(cmd, proc)

    def __call__(self, *args, **kw):
        """Runs a command that must succeed; answers the CLI's JSON output (or None)."""
        result = self.run(*args, **kw)
        assert result.returncode == 0, f"{' '.join(result.args[1:])}\n{result.stderr}"
        return result.json

    def each(self, *commands, **kw):
        """Runs independent commands that must succeed, two at a time (the CLI's start-up is
        most of its time); answers their JSON outputs in order."""
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            return list(pool.map(lambda args: self(*args, **kw), commands))

    def fails(self, *args, **kw):
        """Runs a command that must fail; answers its ServiceError (status, code, message…)."""
        result = self.run(*args, **kw)
        assert result.returncode != 0, f"expected a failure: {' '.join(result.args[1:])}\n{result.stdout}"
        return result.service_error


@pytest.fixture(scope="session")
def oci_cli(osmd):
    return OciCli(osmd)


class SimFleet:
    def __init__(self, compartment, proc, log_path, instances):
        self.compartment = compartment
        self.proc = proc
        self.log_path = log_path
        self.instances = instances  # ManagedInstanceSummary, sorted by display name

    @property
    def ids(self):
        return [i.id for i in self.instances]


def _inventory_reported(osms, instance):
    if instance.os_family == "WINDOWS":
        return bool(osms.list_windows_updates_installed_on_managed_instance(instance.id).data)
    return bool(osms.list_packages_installed_on_managed_instance(instance.id, limit=1).data)


@pytest.fixture(scope="session")
def sim_fleet(osmd, osms):
    """Starts osm-sim processes: `sim_fleet(compartment, n, **knobs)` enrols n simulated
    instances into the compartment (knobs are osm-sim flags, e.g. fail_ratio=1), waits until
    each has reported its package inventory and answers a SimFleet. Each fleet gets its own
    hostname range; all are stopped at the end of the session."""
    started = []
    numbers = itertools.count(1001, 100)

    def start(compartment, instances, *, action_ms=50, **knobs):
        first = next(numbers)
        log_path = osmd.data_dir / f"osm-sim-{first}.log"
        flags = [f"--{k.replace('_', '-')}={v}" for k, v in knobs.items()]
        proc = subprocess.Popen(
            [SIM_BIN, "--server", f"https://127.0.0.1:{osmd.port}", "--ca", osmd.ca,
             "--install-key", str(osmd.data_dir / "admin" / "install-key"), "--instances", str(instances),
             "--compartment", compartment, "--action-ms", str(action_ms), "--first", str(first), *flags],
            stdout=open(log_path, "w"), stderr=subprocess.STDOUT)
        started.append(proc)
        names = {f"sim-{n:05d}" for n in range(first, first + instances)}
        deadline = time.time() + 60
        while True:
            mine = [i for i in osms.list_managed_instances(compartment, sort_by="DISPLAYNAME").data
                    if i.display_name in names]
            if len(mine) == instances and all(_inventory_reported(osms, i) for i in mine):
                return SimFleet(compartment, proc, log_path, mine)
            assert proc.poll() is None, open(log_path).read()
            assert time.time() < deadline, f"osm-sim did not enrol {instances} instances: {open(log_path).read()}"
            time.sleep(0.2)

    yield start
    for proc in started:
        proc.send_signal(signal.SIGTERM)
    for proc in started:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def new_compartment(osmd, identity):
    """`new_compartment(name, parent=None)`: a compartment under the tenancy (or parent)."""
    def create(name, parent=None):
        details = oci.identity.models.CreateCompartmentDetails(
            compartment_id=parent or osmd.tenancy, name=f"{name}-{time.time_ns()}", description="compat test")
        return identity.create_compartment(details).data.id
    return create
