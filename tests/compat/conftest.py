"""Starts one osmd for the session and hands tests the real `oci` SDK, configured exactly as an
operator would: the administrator's config file that osmd wrote, and REQUESTS_CA_BUNDLE."""
import os
import pathlib
import signal
import socket
import subprocess
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
