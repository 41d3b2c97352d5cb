"""The lab's local registry and demo images.

Owns: a Debian `docker-registry` process on port 5000 (own config and
storage under /var/lib/shoal-lab/registry, detached, started once; restarted
once if an older one listens on loopback only), reached by the host as
127.0.0.1:5000 and by lab nodes at the host's underlay address (their
127.0.0.1 is their own; see lab/podstore.py), with the nftables table
`inet shoal_registry` letting port 5000 be reached only from loopback and the
lab bridges (`shoallab*`); and the demo image `127.0.0.1:5000/shoal/busybox:latest`, built from the host's
busybox-static (busybox plus its applet symlinks, /etc/passwd with root and
nobody, /tmp) with `podman import` and pushed there over plain HTTP; and
`127.0.0.1:5000/shoal/busybox-unhealthy:latest`, the demo image with its own
HEALTHCHECK (every second, 2 retries, failing until /tmp/healthy exists), built
with `podman build --format docker` (OCI images have no HEALTHCHECK); and the
stand-ins: the demo image pushed under a Docker Hub name's repository
(lab/hubnames.py: `redis:alpine` -> `127.0.0.1:5000/library/redis:alpine`)
whose entrypoint serves a page naming the image over HTTP on given ports
(busybox httpd) and keeps running, whatever command the service gives; lab
nodes pull Docker Hub names from there (lab/podstore.py), so a Compose file
naming `redis:alpine` runs unchanged in the lab. Also variants of the demo
image (`push_variant`: one marker file more, pushed under a given repo:tag,
for tests of digest pinning that move a tag) and the digest the registry
reports for a tag (`manifest_digest`).

Every step is idempotent and cheap once done (two HTTP requests, three for a
stand-in). Run `python -m lab.images [--stand-in NAME[=PORT[,PORT...]]...]` to
prepare them by hand.
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator, Sequence

from lab.hubnames import (DEFAULT_PORT, LAB_REGISTRY, HubName, ImageNameError, StandInRequest,
                          parse_stand_in, stand_in_request)

REGISTRY_ADDR = LAB_REGISTRY
REGISTRY_PORT = 5000
REGISTRY_LISTEN = f"0.0.0.0:{REGISTRY_PORT}"   # loopback for the host, the bridges for lab nodes
GUARD_TABLE = "shoal_registry"
LAB_DIR = Path(os.environ.get("SHOAL_LAB_DIR", "/var/lib/shoal-lab"))
REGISTRY_DIR = LAB_DIR / "registry"
DEMO_REPO = "shoal/busybox"
DEMO_TAG = "latest"
DEMO_IMAGE = f"{REGISTRY_ADDR}/{DEMO_REPO}:{DEMO_TAG}"
UNHEALTHY_REPO = "shoal/busybox-unhealthy"
UNHEALTHY_IMAGE = f"{REGISTRY_ADDR}/{UNHEALTHY_REPO}:{DEMO_TAG}"
UNHEALTHY_CHECK = ("test -f /tmp/healthy || "
                   "{ echo 'image healthcheck: /tmp/healthy is missing'; exit 1; }")
BUSYBOX = "/bin/busybox"
STAND_IN_LABEL = "com.shoal.lab.stand-in"   # "<canonical name> ports=<p,...>"
REGISTRY_BINARY = "docker-registry"

_MANIFEST_TYPES = ", ".join([
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
])

_REGISTRY_CONFIG = """\
# Written by lab/images.py: the Shoal lab's registry (no auth, plain HTTP; reachable
# from loopback and the lab bridges only: nftables table inet shoal_registry)
version: 0.1
log:
  level: warn
  fields:
    service: shoal-lab-registry
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
http:
  addr: {addr}
"""

_PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
)
_GROUP = "root:x:0:\nnogroup:x:65534:\n"


class LabImageError(Exception):
    """The registry or a demo image could not be prepared; the message says why."""


def _http_status(url: str, headers: dict[str, str] | None = None, timeout: float = 2.0) -> int:
    """Status code of a GET, or 0 when nothing answers."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code
    except (urllib.error.URLError, OSError):
        return 0


def registry_alive(addr: str = REGISTRY_ADDR) -> bool:
    """True when a registry answers the v2 API check at addr."""
    return _http_status(f"http://{addr}/v2/") == 200


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """An exclusive file lock, so concurrent test sessions prepare things once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _configured_listen() -> str:
    """The listen address in the registry's config file ("" when there is none)."""
    try:
        text = (REGISTRY_DIR / "config.yml").read_text()
    except OSError:
        return ""
    for line in text.splitlines():
        if line.strip().startswith("addr:"):
            return line.split(":", 1)[1].strip()
    return ""


def _guard_port() -> None:
    """Lets the registry's port be reached from loopback and the lab bridges only."""
    if subprocess.run(["nft", "list", "table", "inet", GUARD_TABLE], capture_output=True,
                      timeout=30).returncode == 0:
        return
    install_port_guard(GUARD_TABLE, REGISTRY_PORT, what="the registry")


def install_port_guard(table: str, port: int, address: str = "",
                       what: str = "a lab registry") -> None:
    """nftables table `inet TABLE`: TCP `port` (on `address` only, when given) reached
    from loopback and the lab bridges (`shoallab*`) only; LabImageError when nft fails."""
    match = f"ip daddr {address} tcp dport {port}" if address else f"tcp dport {port}"
    rules = (f"table inet {table} {{\n"
             "  chain input {\n"
             "    type filter hook input priority -5; policy accept;\n"
             f'    {match} iifname "lo" accept\n'
             f'    {match} iifname "shoallab*" accept\n'
             f"    {match} drop\n"
             "  }\n}\n")
    done = subprocess.run(["nft", "-f", "-"], input=rules, capture_output=True, text=True,
                          timeout=30)
    if done.returncode != 0:
        raise LabImageError(f"cannot install {what}'s nftables guard: {done.stderr.strip()}")


def _stop_old_registry(timeout: float = 10.0) -> None:
    """Stops a registry this module started with another listen address."""
    try:
        pid = int((REGISTRY_DIR / "registry.pid").read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        pid, cmdline = 0, b""
    if REGISTRY_BINARY.encode() not in cmdline:
        raise LabImageError(f"a registry answers on {REGISTRY_ADDR} but was not started by "
                            f"lab/images.py (no live pid in {REGISTRY_DIR / 'registry.pid'}); "
                            f"stop it so the lab can start one listening on {REGISTRY_LISTEN}")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and registry_alive():
        time.sleep(0.05)


def ensure_registry(timeout: float = 20.0) -> str:
    """Starts the lab registry unless it answers already; returns the host's address of it."""
    if registry_alive() and _configured_listen() == REGISTRY_LISTEN:
        _guard_port()
        return REGISTRY_ADDR
    with _lock(REGISTRY_DIR / ".lock"):
        if registry_alive():
            if _configured_listen() == REGISTRY_LISTEN:
                _guard_port()
                return REGISTRY_ADDR
            _stop_old_registry()
        _guard_port()
        storage = REGISTRY_DIR / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        config = REGISTRY_DIR / "config.yml"
        config.write_text(_REGISTRY_CONFIG.format(storage=storage, addr=REGISTRY_LISTEN))
        log_path = REGISTRY_DIR / "registry.log"
        try:
            with open(log_path, "ab") as log, open(os.devnull, "rb") as null:
                process = subprocess.Popen(
                    [REGISTRY_BINARY, "serve", str(config)],
                    stdin=null, stdout=log, stderr=log,
                    start_new_session=True, close_fds=True,
                )
        except FileNotFoundError as err:
            raise LabImageError(
                f"{REGISTRY_BINARY} is not installed (apt-get install docker-registry; "
                "see scripts/setup.sh)") from err
        (REGISTRY_DIR / "registry.pid").write_text(f"{process.pid}\n")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if registry_alive():
                return REGISTRY_ADDR
            if process.poll() is not None:
                break
            time.sleep(0.05)
        tail = log_path.read_text(errors="replace")[-2000:]
        raise LabImageError(f"registry on {REGISTRY_ADDR} did not come up; log {log_path}:\n{tail}")


def image_in_registry(repo: str, tag: str, addr: str = REGISTRY_ADDR) -> bool:
    """True when the registry at addr holds a manifest for repo:tag."""
    url = f"http://{addr}/v2/{repo}/manifests/{tag}"
    return _http_status(url, {"Accept": _MANIFEST_TYPES}) == 200


def manifest_digest(repo: str, tag: str, addr: str = REGISTRY_ADDR) -> str:
    """The digest the registry at addr reports for repo:tag (its Docker-Content-Digest),
    or LabImageError when it holds no such manifest."""
    request = urllib.request.Request(f"http://{addr}/v2/{repo}/manifests/{tag}",
                                     method="HEAD", headers={"Accept": _MANIFEST_TYPES})
    try:
        with urllib.request.urlopen(request, timeout=5.0) as response:
            digest = response.headers.get("Docker-Content-Digest", "")
    except (urllib.error.URLError, OSError) as err:
        raise LabImageError(f"no manifest for {repo}:{tag} at {addr}: {err}") from err
    if not digest:
        raise LabImageError(f"the registry at {addr} gave no digest for {repo}:{tag}")
    return digest


def push_variant(repo: str, tag: str, marker: str) -> str:
    """The demo image with /etc/shoal-variant holding `marker`, pushed to the lab
    registry as repo:tag (moving the tag if it was there); returns the digest the
    registry now reports for repo:tag. The host's local copy is dropped again, so
    only the registry holds it."""
    ensure_registry()
    reference = f"{REGISTRY_ADDR}/{repo}:{tag}"
    rootfs = io.BytesIO(busybox_rootfs_tar())
    with tarfile.open(fileobj=rootfs, mode="a", format=tarfile.GNU_FORMAT) as tar:
        _add_file(tar, "etc/shoal-variant", marker.encode() + b"\n")
    _podman(["import", "--change", 'CMD ["sh"]', "--change", "WORKDIR /",
             "--change", "ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin",
             "-", reference], stdin=rootfs.getvalue())
    try:
        _podman(["push", "--tls-verify=false", reference])
    finally:
        subprocess.run(["podman", "rmi", reference], capture_output=True, timeout=120)
    return manifest_digest(repo, tag)


def _add_dir(tar: tarfile.TarFile, name: str, mode: int = 0o755) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = mode
    tar.addfile(info)


def _add_file(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    tar.addfile(info, io.BytesIO(data))


def busybox_rootfs_tar(busybox: str = BUSYBOX) -> bytes:
    """A root filesystem tarball: busybox, its applet symlinks, passwd, group, /tmp.

    Timestamps are zero, so the same busybox always gives the same layer digest.
    """
    applets = subprocess.run([busybox, "--list-full"], check=True, capture_output=True,
                             text=True).stdout.split()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for directory in ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "root",
                          "proc", "sys", "dev", "run", "var", "home"):
            _add_dir(tar, directory, 0o700 if directory == "root" else 0o755)
        _add_dir(tar, "tmp", 0o1777)
        _add_dir(tar, "var/tmp", 0o1777)
        _add_file(tar, "bin/busybox", Path(busybox).read_bytes(), 0o755)
        for applet in sorted(set(applets)):
            if applet == "bin/busybox" or "/" not in applet:
                continue
            link = tarfile.TarInfo(applet)
            link.type = tarfile.SYMTYPE
            link.linkname = "/bin/busybox"
            link.mode = 0o777
            tar.addfile(link)
        _add_file(tar, "etc/passwd", _PASSWD.encode())
        _add_file(tar, "etc/group", _GROUP.encode())
        _add_file(tar, "etc/hosts", b"127.0.0.1 localhost\n::1 localhost\n")
    return buffer.getvalue()


def _podman(args: list[str], stdin: bytes | None = None, timeout: float = 120.0) -> str:
    try:
        done = subprocess.run(["podman", *args], input=stdin, capture_output=True,
                              timeout=timeout)
    except FileNotFoundError as err:
        raise LabImageError("podman is not installed (see scripts/setup.sh)") from err
    except subprocess.TimeoutExpired as err:
        raise LabImageError(f"podman {args[0]} timed out after {timeout:.0f}s") from err
    if done.returncode != 0:
        raise LabImageError(f"podman {' '.join(args[:2])} failed: "
                            f"{done.stderr.decode(errors='replace').strip()}")
    return done.stdout.decode(errors="replace").strip()


def build_and_push_busybox(reference: str = DEMO_IMAGE) -> str:
    """Imports the busybox rootfs into podman as `reference` and pushes it."""
    _podman(["import", "--change", 'CMD ["sh"]', "--change", "WORKDIR /",
             "--change", "ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin",
             "-", reference], stdin=busybox_rootfs_tar())
    _podman(["push", "--tls-verify=false", reference])
    return reference


def ensure_demo_image() -> str:
    """Makes sure the registry runs and holds the busybox demo image; returns its reference."""
    ensure_registry()
    if image_in_registry(DEMO_REPO, DEMO_TAG):
        return DEMO_IMAGE
    with _lock(REGISTRY_DIR / ".build.lock"):
        if not image_in_registry(DEMO_REPO, DEMO_TAG):
            build_and_push_busybox(DEMO_IMAGE)
    return DEMO_IMAGE


def build_and_push_unhealthy(reference: str = UNHEALTHY_IMAGE) -> str:
    """Builds the demo image with a failing HEALTHCHECK (Docker format) and pushes it."""
    containerfile = (f"FROM {DEMO_IMAGE}\n"
                     f"HEALTHCHECK --interval=1s --timeout=2s --retries=2 CMD {UNHEALTHY_CHECK}\n")
    with tempfile.TemporaryDirectory(prefix="shoal-image-") as context:
        (Path(context) / "Containerfile").write_text(containerfile)
        _podman(["build", "--format", "docker", "--tls-verify=false", "--pull=missing",
                 "--quiet", "-t", reference, context])
    _podman(["push", "--tls-verify=false", reference])
    return reference


def ensure_unhealthy_image() -> str:
    """Makes sure the registry holds the image whose own HEALTHCHECK fails; returns it."""
    ensure_demo_image()
    if image_in_registry(UNHEALTHY_REPO, DEMO_TAG):
        return UNHEALTHY_IMAGE
    with _lock(REGISTRY_DIR / ".build.lock"):
        if not image_in_registry(UNHEALTHY_REPO, DEMO_TAG):
            build_and_push_unhealthy(UNHEALTHY_IMAGE)
    return UNHEALTHY_IMAGE


def _stand_in_script(image: HubName, ports: Sequence[int]) -> str:
    """The stand-in's entrypoint: httpd on every port, arguments ignored, stops on TERM."""
    return ("#!/bin/sh\n"
            f"# Shoal lab stand-in for {image.canonical}: serves /www over HTTP on port(s) "
            f"{' '.join(map(str, ports))}; the service's command, if any, is ignored\n"
            "trap 'kill $pids 2>/dev/null; exit 0' TERM INT\n"
            "pids=\n"
            f"for port in {' '.join(map(str, ports))}; do\n"
            '    httpd -f -p "$port" -h /www & pids="$pids $!"\n'
            "done\n"
            "wait\n")


def stand_in_label(image: HubName, ports: Sequence[int]) -> str:
    """The label value that tells a stand-in for exactly this name and these ports."""
    return f"{image.canonical} ports={','.join(map(str, ports))}"


def _registry_json(url: str, accept: str = "", timeout: float = 5.0) -> dict | None:
    """A JSON document from the registry, or None when it is missing or not JSON."""
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            data = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def registry_labels(repo: str, tag: str, addr: str = REGISTRY_ADDR) -> dict[str, str] | None:
    """The labels in the image config of repo:tag at addr (None: no such single image)."""
    manifest = _registry_json(f"http://{addr}/v2/{repo}/manifests/{tag}", _MANIFEST_TYPES)
    digest = ((manifest or {}).get("config") or {}).get("digest")
    if not digest:
        return None
    config = _registry_json(f"http://{addr}/v2/{repo}/blobs/{digest}")
    if config is None:
        return None
    return dict((config.get("config") or {}).get("Labels") or {})


def stand_in_present(request: StandInRequest, addr: str = REGISTRY_ADDR) -> bool:
    """True when the registry holds the stand-in for this name with these ports."""
    labels = registry_labels(request.image.repository, request.image.tag, addr)
    return (labels or {}).get(STAND_IN_LABEL) == stand_in_label(request.image, request.ports)


def build_and_push_stand_in(request: StandInRequest) -> str:
    """Builds the stand-in on the demo image, pushes it, drops the host's local copy."""
    image, ports = request.image, request.ports
    page = (f"<html><body><h1>{image.canonical}</h1><p>Shoal lab stand-in for "
            f"{image.name}</p></body></html>\n")
    expose = " ".join(f"{port}/tcp" for port in ports)
    containerfile = (f"FROM {DEMO_IMAGE}\n"
                     "COPY index.html /www/index.html\n"
                     "COPY stand-in.sh /stand-in.sh\n"
                     f"LABEL {STAND_IN_LABEL}={json.dumps(stand_in_label(image, ports))}\n"
                     f"EXPOSE {expose}\n"
                     'ENTRYPOINT ["/bin/sh", "/stand-in.sh"]\n'
                     "CMD []\n")
    with tempfile.TemporaryDirectory(prefix="shoal-stand-in-") as context:
        (Path(context) / "Containerfile").write_text(containerfile)
        (Path(context) / "index.html").write_text(page)
        (Path(context) / "stand-in.sh").write_text(_stand_in_script(image, ports))
        _podman(["build", "--format", "docker", "--tls-verify=false", "--pull=missing",
                 "--quiet", "-t", image.reference, context])
    try:
        _podman(["push", "--tls-verify=false", image.reference])
    finally:
        # only the registry needs it (no --force: a container or another name keeps it)
        subprocess.run(["podman", "rmi", image.reference], capture_output=True, timeout=120)
    return image.reference


def ensure_stand_in(name: str, ports: int | Sequence[int] = DEFAULT_PORT) -> str:
    """Makes sure the lab registry holds a stand-in for the image `name` (Docker Hub name
    or 127.0.0.1:5000/...) serving HTTP on `ports`; returns its lab registry reference.

    Raises ImageNameError for a name that cannot get one, LabImageError when the
    registry or podman fails.
    """
    return push_stand_in(stand_in_request(name, ports))


def push_stand_in(request: StandInRequest) -> str:
    """`ensure_stand_in` for a parsed request."""
    ensure_demo_image()
    if stand_in_present(request):
        return request.image.reference
    with _lock(REGISTRY_DIR / ".build.lock"):
        if not stand_in_present(request):
            build_and_push_stand_in(request)
    if not stand_in_present(request):
        raise LabImageError(f"the stand-in {request.image.reference} was pushed but the "
                            f"registry does not show it with label {STAND_IN_LABEL}")
    return request.image.reference


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m lab.images",
        description="Start the lab registry, push the demo images and, with --stand-in, "
                    "stand-ins for Docker Hub images (a busybox httpd answering on the "
                    "given ports) so that Compose files naming them run in the lab.")
    parser.add_argument("--stand-in", action="append", default=[], metavar="NAME[=PORT,...]",
                        help="push a stand-in under NAME (e.g. redis:alpine=6379, "
                             "dockersamples/examplevotingapp_vote:before=80; port 80 when "
                             "none is given); repeatable")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m lab.images`: prepare the registry, the demo images and any stand-ins."""
    args = _arguments(argv)
    try:
        requests = [parse_stand_in(arg) for arg in args.stand_in]
    except ImageNameError as err:
        print(f"error: --stand-in {err}", file=sys.stderr)
        return 2
    try:
        started = time.monotonic()
        reference = ensure_demo_image()
        unhealthy = ensure_unhealthy_image()
        stand_ins = [(request, push_stand_in(request)) for request in requests]
    except (LabImageError, subprocess.CalledProcessError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"registry  http://{REGISTRY_ADDR}/v2/")
    print(f"image     {reference}")
    print(f"image     {unhealthy}")
    for request, pushed in stand_ins:
        print(f"stand-in  {request.image.name} -> {pushed} "
              f"(http on {','.join(map(str, request.ports))})")
    print(f"ready in {time.monotonic() - started:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
