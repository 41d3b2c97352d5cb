"""Per-node podman storage of the lab: each node is a host of its own for podman.

Owns, for one lab node, the directory `<lab-dir>/podman/<name>`, next to (never
inside) the node's data directory:
* `root/`: the graph root of the node's container storage (images, layers,
  containers), so nodes neither share images nor wait on one another's
  storage lock; its run root is `/run/shoal-lab/<hash of that directory>`
  (podman refuses run roots longer than 50 characters);
* `home/.config/containers/registries.conf`: the node's registry view. Inside
  a node's network namespace 127.0.0.1 is the node's own loopback, so pulls of
  the lab registry's images (`127.0.0.1:5000/...`, names unchanged) go to the
  registry's mirror on the underlay (the host's bridge address). Docker Hub
  names (unqualified, or `docker.io/...`) are pulled from the lab registry as
  if it were Docker Hub: `redis:alpine` is `docker.io/library/redis:alpine`,
  read from the lab registry's `library/redis:alpine` (see lab/hubnames.py; a
  stand-in pushed by `python -m lab.images --stand-in` lives there). A
  registries.conf under HOME replaces the host's, drop-ins included;
* its teardown: every container of that storage removed, leftover processes
  using it killed, the mounts under it unmounted, the directory removed.

The node's daemon gets these through `worker.podman.PodmanOptions` (the
$SHOAL_PODMAN_* variables in its environment).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from lab.hubnames import HUB_DOMAIN, LAB_REGISTRY
from lab.netlab import kill_and_wait
from worker.podman import PodmanOptions

LOCAL_REGISTRY = LAB_REGISTRY
RUN_ROOTS = Path("/run/shoal-lab")

_REGISTRIES_CONF = """\
# Written by lab/podstore.py: how this lab node reaches registries.
# 127.0.0.1 is the node's own loopback inside its namespace: the lab registry
# is pulled through its address on the underlay. Docker Hub names are read from
# the lab registry (docker.io/library/redis -> repository library/redis there);
# unqualified names are Docker Hub names, resolved without a prompt.
unqualified-search-registries = ["{hub}"]
short-name-mode = "disabled"
{local_table}
[[registry]]
prefix = "{hub}"
location = "{mirror}"
insecure = true
"""

_LOCAL_TABLE = """
[[registry]]
prefix = "{local}"
location = "{local}"
insecure = true
"""

_LOCAL_MIRROR = """
[[registry.mirror]]
location = "{mirror}"
insecure = true
"""


def registries_conf(registry: str) -> str:
    """A registries.conf reaching the lab registry at `registry` (host:port): its own
    names (127.0.0.1:5000/...) and Docker Hub names (unqualified or docker.io/...)."""
    local = _LOCAL_TABLE.format(local=LOCAL_REGISTRY)
    if registry != LOCAL_REGISTRY:
        local += _LOCAL_MIRROR.format(mirror=registry)
    return _REGISTRIES_CONF.format(hub=HUB_DOMAIN, local_table=local, mirror=registry)


def pids_using(path: str) -> list[int]:
    """PIDs whose command line names `path` as an argument or a directory in it."""
    needles = (path.encode() + b"\0", path.encode() + b"/")
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if any(n in cmdline for n in needles):
            found.append(int(entry))
    return found


def _unescape(field: str) -> str:
    """A mountinfo path field with its octal escapes (\\040 for a space ...) decoded."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below path in this mount namespace, deepest first."""
    prefix = str(path).rstrip("/")
    found = []
    with open("/proc/self/mountinfo") as info:
        for line in info:
            point = _unescape(line.split()[4])
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return sorted(set(found), key=lambda p: p.count("/"), reverse=True)


class NodeStorage:
    """The podman storage and registry view of one lab node, in `base`."""

    def __init__(self, base: Path) -> None:
        self.base = Path(base)

    @property
    def run_root(self) -> Path:
        """A short path (podman's limit is 50 characters) that only this storage uses."""
        return RUN_ROOTS / hashlib.sha256(str(self.base.absolute()).encode()).hexdigest()[:16]

    @property
    def options(self) -> PodmanOptions:
        return PodmanOptions(root=str(self.base / "root"), run_root=str(self.run_root),
                             home=str(self.base / "home"))

    @property
    def registries_conf(self) -> Path:
        return self.base / "home" / ".config" / "containers" / "registries.conf"

    def prepare(self, registry_mirror: str) -> None:
        """Creates the directories and the registry view (mirror: host:port on the underlay)."""
        (self.base / "root").mkdir(parents=True, exist_ok=True)
        self.run_root.mkdir(parents=True, exist_ok=True)
        self.registries_conf.parent.mkdir(parents=True, exist_ok=True)
        self.registries_conf.write_text(registries_conf(registry_mirror))

    def command(self) -> list[str]:
        """argv prefix of a podman call on this node's storage."""
        return self.options.command()

    def environ(self, base: dict[str, str] | None = None) -> dict[str, str]:
        return self.options.environ(base)

    def remove(self) -> list[str]:
        """Removes every container of the storage, then the storage; returns problems."""
        if not self.base.exists():
            shutil.rmtree(self.run_root, ignore_errors=True)
            return []
        problems = []
        if (self.base / "root").exists() and shutil.which("podman"):
            res = subprocess.run([*self.command(), "rm", "--all", "--force", "--time", "0"],
                                 capture_output=True, text=True, timeout=300,
                                 env=self.environ())
            if res.returncode != 0:
                problems.append(f"podman rm --all in {self.base}: {res.stderr.strip()}")
        kill_and_wait(pids_using(str(self.base)) + pids_using(str(self.run_root)))
        for point in mounts_under(self.base) + mounts_under(self.run_root):
            res = subprocess.run(["umount", point], capture_output=True, text=True, timeout=60)
            if res.returncode != 0:
                res = subprocess.run(["umount", "--lazy", point], capture_output=True,
                                     text=True, timeout=60)
                if res.returncode != 0:
                    problems.append(f"umount {point}: {res.stderr.strip()}")
        if problems:
            return problems
        for path in (self.base, self.run_root):
            shutil.rmtree(path, ignore_errors=True)
            if path.exists():
                problems.append(f"{path} could not be removed")
        return problems
