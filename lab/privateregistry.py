"""A private registry for the lab: TLS from a CA of its own, htpasswd (bcrypt) logins.

Owns, for one address (the host's underlay address, which the lab nodes and the
host both reach the same way), a Debian `docker-registry` process beside the lab's
open one (lab/images.py), with:
* its own directory `<lab-dir>/private-registry/<addr>_<port>/`: config, storage,
  the htpasswd file made by `htpasswd -B` (apache2-utils), the CA and server
  certificates (made here with `cryptography`: the server's carries the address as
  an IP SAN), its log;
* the CA installed as `/etc/containers/certs.d/<addr>:<port>/ca.crt`, so that
  podman on every lab node and `cli.registry` on the host trust it;
* the nftables table `inet shoal_privreg_<addr>_<port>` letting the port be reached
  from loopback and the lab bridges (`shoallab*`) only;
* `push(source, repository, tag)`: an image of the host's podman storage pushed
  there with `podman push --authfile --cert-dir` (the login in a 0600 file removed
  after the push: no password is ever on a command line, `htpasswd` reads it on
  stdin too).

`PrivateRegistry.running(...)` is a context manager: everything above exists inside
the block and is gone after it (process stopped, certs.d entry, nftables table and
directory removed), also when the block raises. A start first stops what a run on
the same address left when it was killed before its clean-up (by the pid file).
"""
from __future__ import annotations

import base64
import contextlib
import datetime
import ipaddress
import json
import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from lab.images import LAB_DIR, REGISTRY_BINARY, LabImageError, install_port_guard

CERTS_D = Path("/etc/containers/certs.d")
DEFAULT_PORT = 5443

_CONFIG = """\
# Written by lab/privateregistry.py: a lab registry that wants a login (htpasswd,
# bcrypt) over TLS (its own CA; reachable from loopback and the lab bridges only)
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
auth:
  htpasswd:
    realm: shoal-lab-private
    path: {htpasswd}
http:
  addr: {addr}
  tls:
    certificate: {cert}
    key: {key}
"""


def alive(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie (exited, not yet reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def stop_group(pid: int, timeout: float = 10.0) -> None:
    """Stops the process group led by `pid` as `PrivateRegistry.stop` stops its own:
    SIGTERM to the group, SIGKILL to it when the leader is still there after `timeout`
    seconds; returns once the leader is gone (or a second `timeout` passed)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and alive(pid):
            time.sleep(0.05)
        if not alive(pid):
            return


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_certificates(address: str, directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for `address` (an IP SAN); returns the paths of the
    CA certificate, the server certificate and the server key."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Shoal lab private registry CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                       crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False,
                                       decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    server = (x509.CertificateBuilder()
              .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, address)]))
              .issuer_name(ca_name).public_key(key.public_key())
              .serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(minutes=5))
              .not_valid_after(now + datetime.timedelta(days=2))
              .add_extension(x509.SubjectAlternativeName(
                  [x509.IPAddress(ipaddress.ip_address(address))]), critical=False)
              .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                             critical=False)
              .sign(ca_key, hashes.SHA256()))
    paths = (directory / "ca.crt", directory / "server.crt", directory / "server.key")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(_pem_key(key))
    os.chmod(paths[2], 0o600)
    return paths


class PrivateRegistry:
    """A registry on `address:port` that wants `username`/`password`, over TLS."""

    def __init__(self, address: str, username: str, password: str,
                 port: int = DEFAULT_PORT) -> None:
        self.address = address
        self.port = port
        self.username = username
        self.password = password
        self.addr = f"{address}:{port}"
        self.dir = LAB_DIR / "private-registry" / f"{address}_{port}"
        self.certs_d = CERTS_D / self.addr
        self.table = f"shoal_privreg_{address.replace('.', '_')}_{port}"
        self.process: subprocess.Popen | None = None

    @classmethod
    @contextlib.contextmanager
    def running(cls, address: str, username: str, password: str,
                port: int = DEFAULT_PORT) -> Iterator["PrivateRegistry"]:
        registry = cls(address, username, password, port)
        try:
            registry.start()
            yield registry
        finally:
            registry.stop()

    # ---- start

    def _htpasswd(self, path: Path) -> None:
        # -i: the password on stdin, never on a command line (ps shows those)
        done = subprocess.run(["htpasswd", "-B", "-i", "-c", str(path), self.username],
                              input=self.password, capture_output=True, text=True,
                              timeout=60)
        if done.returncode != 0:
            raise LabImageError(f"htpasswd -B failed (apt-get install apache2-utils): "
                                f"{done.stderr.strip()}")

    def _guard(self) -> None:
        install_port_guard(self.table, self.port, self.address, what="the private registry")

    def status(self, timeout: float = 2.0) -> int:
        """The status of an anonymous GET /v2/ over verified TLS (401 when up), 0 if none."""
        context = ssl.create_default_context(cafile=str(self.dir / "ca.crt"))
        try:
            with urllib.request.urlopen(f"https://{self.addr}/v2/", timeout=timeout,
                                        context=context) as response:
                return int(response.status)
        except urllib.error.HTTPError as err:
            return err.code
        except (urllib.error.URLError, OSError):
            return 0

    def _stop_leftover(self, timeout: float = 10.0) -> None:
        """Stops a registry an earlier run on this address left (killed before its
        clean-up): found by the pid file in its directory and its command line."""
        try:
            pid = int((self.dir / "registry.pid").read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return
        if str(self.dir / "config.yml").encode() not in cmdline:
            return
        with contextlib.suppress(ProcessLookupError):
            if os.getpgid(pid) != pid:   # started with start_new_session: it leads its group
                return
        stop_group(pid, timeout)

    def start(self, timeout: float = 20.0) -> None:
        self._stop_leftover()
        self._drop_guard()
        shutil.rmtree(self.dir, ignore_errors=True)
        (self.dir / "storage").mkdir(parents=True)
        ca, cert, key = make_certificates(self.address, self.dir)
        htpasswd = self.dir / "htpasswd"
        self._htpasswd(htpasswd)
        self.certs_d.mkdir(parents=True, exist_ok=True)
        shutil.copy(ca, self.certs_d / "ca.crt")
        self._guard()
        config = self.dir / "config.yml"
        config.write_text(_CONFIG.format(storage=self.dir / "storage", htpasswd=htpasswd,
                                         addr=self.addr, cert=cert, key=key))
        log_path = self.dir / "registry.log"
        with open(log_path, "ab") as log, open(os.devnull, "rb") as null:
            try:
                self.process = subprocess.Popen([REGISTRY_BINARY, "serve", str(config)],
                                                stdin=null, stdout=log, stderr=log,
                                                start_new_session=True, close_fds=True)
            except FileNotFoundError as err:
                raise LabImageError(f"{REGISTRY_BINARY} is not installed (apt-get install "
                                    "docker-registry; see scripts/setup.sh)") from err
        (self.dir / "registry.pid").write_text(f"{self.process.pid}\n")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.status() == 401:
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        tail = log_path.read_text(errors="replace")[-2000:]
        raise LabImageError(f"private registry on {self.addr} did not come up; log:\n{tail}")

    def push(self, source: str, repository: str, tag: str) -> str:
        """Pushes `source` (pulled into the host's podman storage first when it is not
        there) as repository:tag; returns the reference nodes pull."""
        target = f"{self.addr}/{repository}:{tag}"
        if subprocess.run(["podman", "image", "exists", source], capture_output=True,
                          timeout=60).returncode != 0:
            # (the lab registry's images: plain HTTP on loopback)
            pulled = subprocess.run(["podman", "pull", "--quiet", "--tls-verify=false", source],
                                    capture_output=True, text=True, timeout=300)
            if pulled.returncode != 0:
                raise LabImageError(f"podman pull {source} failed: {pulled.stderr.strip()}")
        with self.authfile() as authfile:
            done = subprocess.run(
                ["podman", "push", "--authfile", str(authfile),
                 "--cert-dir", str(self.certs_d), source, f"docker://{target}"],
                capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise LabImageError(f"podman push to {target} failed: {done.stderr.strip()}")
        return target

    @contextlib.contextmanager
    def authfile(self) -> Iterator[Path]:
        """The login as a containers-auth.json file (mode 0600, in a private temporary
        directory), removed when the block ends."""
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        with tempfile.TemporaryDirectory(prefix="shoal-privreg-") as directory:
            path = Path(directory) / "auth.json"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump({"auths": {self.addr: {"auth": token}}}, handle)
            yield path

    # ---- stop

    def _drop_guard(self) -> list[str]:
        """Removes the nftables table (when there is one); returns a problem, if any."""
        listed = subprocess.run(["nft", "list", "table", "inet", self.table],
                                capture_output=True, timeout=30)
        if listed.returncode != 0:
            return []
        done = subprocess.run(["nft", "delete", "table", "inet", self.table],
                              capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            return [f"nft delete table inet {self.table}: {done.stderr.strip()}"]
        return []

    def stop(self, timeout: float = 10.0) -> list[str]:
        """Stops the registry and removes all it left; returns what could not be removed."""
        problems = []
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout)
        problems.extend(self._drop_guard())
        shutil.rmtree(self.certs_d, ignore_errors=True)
        shutil.rmtree(self.dir, ignore_errors=True)
        for path in (self.certs_d, self.dir):
            if path.exists():
                problems.append(f"{path} could not be removed")
        return problems
