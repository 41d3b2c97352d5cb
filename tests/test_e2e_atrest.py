"""End to end on a lab: encryption at rest and autolock.

Three managers and a worker. With autolock on, nothing in any node's data
directory names a service, a label value or a secret value (journal and
snapshots included); a restarted manager stays locked (peers see it
Unreachable) until `swarm unlock` gets the right key; a rotated key replaces
the old one; autolock off again lets a manager restart by itself.
"""
from __future__ import annotations

import os
import re
import secrets
from pathlib import Path
from typing import Iterator

import grpc
import pytest

from cli.environment import SNAPSHOT_ENTRIES_ENV
from lab import images
from lab.cluster import Lab
from pki import keystore
from proto import control_pb2 as cpb
from proto import control_pb2_grpc
from proto import objects_pb2 as pb
from tests.labfixtures import lab_cluster

pytestmark = pytest.mark.e2e

MANAGERS = ("manager1", "manager2", "manager3")
LOCKED = "Swarm is encrypted and needs to be unlocked before it can be used."
TAG = secrets.token_hex(4)
SERVICE = f"zebra-atrest-{TAG}"
LABEL_VALUE = f"quokka-label-{TAG}"
SECRET_VALUE = f"pangolin-secret-{TAG}".encode()
SECRET_NAME = f"okapi-pw-{TAG}"
NETWORK = f"narwhal-net-{TAG}"
KEY_RE = re.compile(r"SWMKEY-1-[A-Za-z0-9+/]+")


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    images.ensure_demo_image()
    old = os.environ.get(SNAPSHOT_ENTRIES_ENV)
    os.environ[SNAPSHOT_ENTRIES_ENV] = "40"  # the daemons write raft snapshots early
    try:
        with lab_cluster(3, 1) as running:
            running.wait_ready(timeout=60)
            yield running
    finally:
        if old is None:
            os.environ.pop(SNAPSHOT_ENTRIES_ENV, None)
        else:
            os.environ[SNAPSHOT_ENTRIES_ENV] = old


def control(lab: Lab, name: str) -> tuple[grpc.Channel, control_pb2_grpc.ControlStub]:
    channel = grpc.insecure_channel(lab.host(name))
    return channel, control_pb2_grpc.ControlStub(channel)


def row(lab: Lab, on: str, name: str) -> str:
    res = lab.swarm(on, "node", "ls", check=False)
    return next((line for line in res.stdout.splitlines() if f" {name} " in f" {line} "), "")


def unlock(lab: Lab, name: str, key: str):
    argv = lab._swarm_argv("unlock")
    return lab.exec(name, *argv, input=key + "\n", timeout=120)


def autolock_shown(lab: Lab, name: str) -> str:
    """What `swarm info` on `name` says of autolock ("Autolock Managers: ...")."""
    text = lab.swarm(name, "info").stdout
    line = next(line for line in text.splitlines() if "Autolock Managers:" in line)
    assert lab.swarm(name, "info", "--format", "{{.AutoLockManagers}}").stdout.strip() == \
        line.split(":", 1)[1].strip()
    return line.split(":", 1)[1].strip()


def keys_of(lab: Lab, name: str) -> keystore.ManagerKeys:
    return keystore.ManagerKeys(lab.data_dir(name))


def wait_wrapped(lab: Lab, key: str | None) -> None:
    for name in MANAGERS:
        lab.wait_for(lambda: keys_of(lab, name).wrapped_by(key), 30,
                     f"{name}'s data key wrapped {'by the unlock key' if key else 'locally'}")


def restart_locked(lab: Lab, name: str) -> None:
    lab.kill(name)
    lab.start(name)
    assert lab.locked(name), f"{name} did not start locked:\n{lab.log_tail(name)}"
    res = lab.swarm(name, "node", "ls", check=False)
    assert res.returncode != 0 and LOCKED in res.stderr, res.stderr
    lab.wait_for(lambda: "Unreachable" in row(lab, "manager1", name), 40,
                 f"the other managers to see {name} Unreachable")


def wait_back(lab: Lab, name: str) -> None:
    assert not lab.locked(name)
    lab.wait_for(lambda: lab.swarm(name, "node", "ls", check=False).returncode == 0, 60,
                 f"{name} serving again")
    lab.wait_for(lambda: "Reachable" in row(lab, "manager1", name)
                 and "Unreachable" not in row(lab, "manager1", name), 40, f"{name} Reachable")
    lab.wait_for(lambda: SERVICE in lab.swarm(name, "service", "ls", check=False).stdout, 30,
                 f"{name} to have the data")


def all_files(root: Path) -> Iterator[Path]:
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            yield path


def test_autolock_and_nothing_in_plaintext(lab: Lab) -> None:
    # ---- autolock on: the key is printed as Docker does and wraps every manager's DEK
    res = lab.swarm("manager1", "update", "--autolock=true")
    assert res.stdout.startswith("Swarm updated.\n") and "swarm unlock" in res.stdout, res.stdout
    key = KEY_RE.search(res.stdout).group(0)
    assert lab.swarm("manager2", "unlock-key", "-q").stdout.strip() == key
    assert autolock_shown(lab, "manager3") == "true"
    wait_wrapped(lab, key)
    for name in MANAGERS:
        assert not keys_of(lab, name).kek_path.exists()

    # ---- data: a service with a label, a network and a secret; enough writes for a snapshot
    secret = lab.exec("manager1", *lab._swarm_argv("secret", "create", SECRET_NAME, "-"),
                      input=SECRET_VALUE.decode())
    assert secret.returncode == 0, secret.stderr
    lab.swarm("manager1", "network", "create", "--driver", "overlay", NETWORK)
    lab.swarm("manager1", "service", "create", "-d", "--name", SERVICE, "--label",
              f"tier={LABEL_VALUE}", "--replicas", "2", "--network", NETWORK,
              "--secret", SECRET_NAME, images.ensure_demo_image(), "sleep", "3600")
    channel, stub = control(lab, "manager1")
    with channel:
        for i in range(60):
            filler = pb.ConfigSpec(data=b"x")
            filler.annotations.name = f"filler-{TAG}-{i}"
            stub.CreateConfig(cpb.CreateConfigRequest(spec=filler), timeout=30)
    for name in MANAGERS:
        lab.wait_for(lambda: (lab.data_dir(name) / "raft" / "snapshot").is_file(), 60,
                     f"a raft snapshot on {name}")
    lab.swarm("manager1", "service", "update", "-d", "--label-add", f"later={LABEL_VALUE}",
              SERVICE)
    try:
        lab.wait_for(lambda: "2/2" in lab.swarm("manager1", "service", "ls").stdout, 90,
                     "the service running")
    except AssertionError as exc:
        ps = lab.swarm("manager1", "service", "ps", "--no-trunc", SERVICE, check=False)
        raise AssertionError(f"{exc}\n{ps.stdout}{ps.stderr}\n"
                             + "\n".join(lab.log_tail(n, 20) for n in lab.names())) from None

    # ---- nothing in any data directory names them
    needles = (SERVICE.encode(), LABEL_VALUE.encode(), SECRET_VALUE, SECRET_NAME.encode(),
               NETWORK.encode())
    scanned = 0
    for name in lab.names():
        for path in all_files(lab.data_dir(name)):
            data = path.read_bytes()
            scanned += len(data)
            for needle in needles:
                assert needle not in data, f"{needle!r} in plaintext in {path}"
        for key_file in ("swarm-node.key", "swarm-root-ca.key"):
            path = lab.data_dir(name) / "certificates" / key_file
            if name in MANAGERS and path.exists():
                assert b"ENCRYPTED" in path.read_bytes(), f"{path} is not encrypted"
    assert scanned > 10_000  # the journals and snapshots were there to search

    # ---- a restarted manager is locked until the right key
    restart_locked(lab, "manager3")
    wrong = unlock(lab, "manager3", "SWMKEY-1-" + "A" * 43)
    assert wrong.returncode != 0 and "invalid key provided" in wrong.stderr, wrong.stderr
    garbage = unlock(lab, "manager3", "not-a-key")
    assert garbage.returncode != 0 and "invalid unlock key" in garbage.stderr, garbage.stderr
    assert lab.locked("manager3")
    right = unlock(lab, "manager3", key)
    assert right.returncode == 0, right.stderr
    wait_back(lab, "manager3")
    inspect = lab.swarm("manager3", "service", "inspect", SERVICE).stdout
    assert LABEL_VALUE in inspect
    again = unlock(lab, "manager3", key)
    assert again.returncode != 0 and "swarm is not locked" in again.stderr

    # ---- rotation: the old key is refused after a restart, the new one works
    res = lab.swarm("manager1", "unlock-key", "--rotate")
    assert "Successfully rotated manager unlock key." in res.stdout
    new_key = KEY_RE.search(res.stdout).group(0)
    assert new_key != key
    wait_wrapped(lab, new_key)
    restart_locked(lab, "manager2")
    old = unlock(lab, "manager2", key)
    assert old.returncode != 0 and "invalid key provided" in old.stderr, old.stderr
    assert unlock(lab, "manager2", new_key).returncode == 0
    wait_back(lab, "manager2")

    # ---- autolock off: a manager restarts without a key
    res = lab.swarm("manager1", "update", "--autolock=false")
    assert res.stdout.strip() == "Swarm updated."
    assert autolock_shown(lab, "manager2") == "false"
    wait_wrapped(lab, None)
    none = lab.swarm("manager1", "unlock-key", check=False)
    assert none.returncode != 0 and "no unlock key is set" in none.stderr
    rotate = lab.swarm("manager1", "unlock-key", "--rotate", check=False)
    assert rotate.returncode != 0 and "autolock is not turned on" in rotate.stderr
    lab.kill("manager3")
    lab.start("manager3")
    assert not lab.locked("manager3")
    wait_back(lab, "manager3")


def test_init_autolock_restart_needs_the_key(tmp_path: Path) -> None:
    """`swarm init --autolock` on one node: the key is printed once, the node
    restarts locked (`swarm daemon` says so and returns), `swarm unlock`
    reads the key from standard input."""
    from tests.cluster import SingleNode

    node = SingleNode(tmp_path)
    try:
        res = node.init("--autolock")
        assert res.stdout.startswith("Swarm initialized: current node (")
        assert "To unlock a swarm manager after it restarts, run the `swarm unlock`" in res.stdout
        assert "Please remember to store this key in a password manager" in res.stdout
        key = KEY_RE.search(res.stdout).group(0)
        assert node.swarm("unlock-key", "-q").stdout.strip() == key
        keys = keystore.ManagerKeys(node.data_dir)
        wait_for_wrapped = lambda: keys.wrapped_by(key)  # noqa: E731
        from lab.localnode import wait_for
        wait_for(wait_for_wrapped, 30, "the data key wrapped by the unlock key")
        assert key.encode() not in b"".join(p.read_bytes() for p in all_files(node.data_dir))
        node.kill9()
        started = node.swarm("daemon", "--data-dir", str(node.data_dir))
        assert LOCKED in started.stderr
        locked = node.swarm("service", "ls", check=False)
        assert locked.returncode == 1 and locked.stderr.strip() == (
            "Error response from daemon: " + LOCKED + ' Please use "swarm unlock" to unlock it.')
        wrong = node.swarm("unlock", check=False, input="SWMKEY-1-" + "B" * 43 + "\n")
        assert wrong.returncode == 1
        assert "swarm could not be unlocked: invalid key provided" in wrong.stderr
        node.swarm("unlock", input=key + "\n")
        assert node.swarm("node", "ls", "-q").stdout.strip()
    finally:
        node.destroy()


def test_force_new_cluster_of_a_locked_manager_needs_the_key(tmp_path: Path) -> None:
    """`swarm init --force-new-cluster` on an autolocked manager's data directory
    reads the unlock key from standard input: a wrong one changes nothing."""
    from lab.localnode import wait_for
    from tests.cluster import SingleNode

    node = SingleNode(tmp_path)
    try:
        key = KEY_RE.search(node.init("--autolock").stdout).group(0)
        node.swarm("service", "create", "-d", "--name", f"kept-{TAG}", "--replicas", "0",
                   images.ensure_demo_image())
        keys = keystore.ManagerKeys(node.data_dir)
        wait_for(lambda: keys.wrapped_by(key), 30, "the data key wrapped by the unlock key")
        node.kill9()
        argv = ("init", "--force-new-cluster", "--data-dir", str(node.data_dir))
        wrong = node.swarm(*argv, check=False, input="SWMKEY-1-" + "C" * 43 + "\n")
        assert wrong.returncode == 1 and "invalid key provided" in wrong.stderr, wrong.stderr
        assert not list(node.data_dir.glob("raft.old-*"))      # nothing was changed
        res = node.swarm(*argv, input=key + "\n")
        assert "Swarm initialized" in res.stdout and LOCKED in res.stderr  # still autolocked
        node.swarm("unlock", input=key + "\n")
        assert f"kept-{TAG}" in node.swarm("service", "ls").stdout
    finally:
        node.destroy()
