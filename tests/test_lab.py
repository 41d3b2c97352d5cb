"""The lab harness on real namespaces: node placement, reachability, faults, teardown.

Each lab here lives in its own directory and on its own underlay (see
tests/labfixtures.py), so these tests never touch a lab brought up by hand.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
from pyroute2 import IPRoute

from lab.cluster import Lab
from lab.localnode import LABEL_NODE, podman
from lab.netlab import NETNS_DIR, NetLab, Underlay, pids_in_netns, process_alive
from lab.podstore import mounts_under, pids_using
from lab.state import StateFile
from tests.labfixtures import bridge_exists, lab, lab_cluster, new_lab_root  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

SWARM_LAB = str(Path(sys.executable).parent / "swarm-lab")

LISTENER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(16)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.sendall(b"hi")
    c.close()
"""

PROBE = """
import socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])) as s:
        sys.exit(0 if s.recv(2) == b"hi" else 1)
except OSError:
    sys.exit(3)
"""


def swarm_lab(lab_: Lab, *args: str) -> subprocess.CompletedProcess:
    """Runs the swarm-lab console script against this lab's directory."""
    env = dict(os.environ, SHOAL_LAB_DIR=str(lab_.root))
    return subprocess.run([SWARM_LAB, *args], capture_output=True, text=True, env=env,
                          timeout=120)


def listen_in(netns_path: str, ip: str, port: int) -> subprocess.Popen:
    """A TCP server answering "hi" inside a namespace; returns once it listens."""
    proc = subprocess.Popen(["nsenter", f"--net={netns_path}", sys.executable, "-c", LISTENER,
                             ip, str(port)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def probe_from(netns_path: str, ip: str, port: int, timeout: float = 1.0) -> bool:
    """Whether a connection from inside netns_path to ip:port gets the listener's answer."""
    argv = ["nsenter", f"--net={netns_path}", sys.executable, "-c", PROBE, ip, str(port),
            str(timeout)]
    return subprocess.run(argv, timeout=30).returncode == 0


def leftovers(lab_: Lab, names: list[str], bridge: str, table: str) -> list[str]:
    """Everything of the lab still on the host (empty when it is all gone)."""
    found = []
    for name in names:
        ns = lab_.net.netns_name(name)
        if (NETNS_DIR / ns).exists():
            found.append(f"netns {ns}")
    with IPRoute() as ipr:
        links = [link.get_attr("IFLA_IFNAME") for link in ipr.get_links()]
    found += [f"link {link}" for link in links if link.startswith(bridge)]
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    found += [f"nft {line}" for line in tables.splitlines() if line.split()[-1] == table]
    needle = str(lab_.root).encode()
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and needle in Path(f"/proc/{entry}/cmdline").read_bytes():
                found.append(f"process {entry}")
        except OSError:
            continue
    if (lab_.root / "nodes").exists() and any((lab_.root / "nodes").iterdir()):
        found.append(f"data dirs in {lab_.root / 'nodes'}")
    if (lab_.root / "podman").exists() and any((lab_.root / "podman").iterdir()):
        found.append(f"podman storage in {lab_.root / 'podman'}")
    found += [f"mount {point}" for point in mounts_under(lab_.root)]
    if lab_.state.exists():
        found.append(f"state file {lab_.state.path}")
    return found


@pytest.fixture(scope="module")
def shared_lab() -> Iterator[Lab]:
    """One single-manager lab for the read-mostly tests of this module."""
    with lab_cluster(managers=1, workers=0) as running:
        yield running


def test_daemon_runs_in_its_namespace_with_its_hostname(shared_lab: Lab) -> None:
    pid = shared_lab.pid("manager1")
    assert pid is not None
    node_net = os.readlink(f"/proc/{pid}/ns/net")
    assert node_net != os.readlink("/proc/self/ns/net")
    assert node_net == f"net:[{os.stat(shared_lab.net.netns_path('manager1')).st_ino}]"
    assert os.readlink(f"/proc/{pid}/ns/uts") != os.readlink("/proc/self/ns/uts")
    res = swarm_lab(shared_lab, "exec", "manager1", "--", "swarm", "node", "ls")
    assert res.returncode == 0, res.stderr
    header, row = res.stdout.splitlines()[:2]
    assert "HOSTNAME" in header
    assert row.split()[2] == "manager1"
    assert swarm_lab(shared_lab, "exec", "manager1", "--", "hostname").stdout.strip() == "manager1"


def test_status_ip_and_host(shared_lab: Lab) -> None:
    shared_lab.wait_ready()
    res = swarm_lab(shared_lab, "status", "--format", "json")
    assert res.returncode == 0, res.stderr
    row = json.loads(res.stdout)
    assert row["Name"] == "manager1" and row["Role"] == "manager"
    assert row["IP"] == shared_lab.ip("manager1") == shared_lab.net.underlay.node_ip(0)
    assert row["Underlay"] == shared_lab.net.underlay.bridge
    assert row["Pid"] == shared_lab.pid("manager1")
    assert row["DataDir"] == str(shared_lab.root / "nodes" / "manager1")
    assert row["Host"] == f"unix://{row['DataDir']}/swarm.sock"
    assert swarm_lab(shared_lab, "status", "--format", "{{.Name}}:{{.IP}}").stdout == \
        f"manager1:{row['IP']}\n"
    assert swarm_lab(shared_lab, "ip", "manager1").stdout.strip() == row["IP"]
    assert swarm_lab(shared_lab, "host", "manager1").stdout.strip() == row["Host"]
    table = swarm_lab(shared_lab, "status").stdout.splitlines()
    assert table[0].split()[:3] == ["NAME", "ROLE", "IP"]


def test_cli_errors(shared_lab: Lab, tmp_path: Path) -> None:
    res = swarm_lab(shared_lab, "ip", "nosuchnode")
    assert res.returncode == 1 and "unknown node 'nosuchnode'" in res.stderr
    res = swarm_lab(shared_lab, "up")
    assert res.returncode == 1 and "already up" in res.stderr
    res = swarm_lab(shared_lab, "exec", "manager1")
    assert res.returncode == 2 and "needs a command" in res.stderr
    res = swarm_lab(shared_lab, "partition", "manager1", "--from", "manager1")
    assert res.returncode == 1 and "both sides" in res.stderr
    env = dict(os.environ, SHOAL_LAB_DIR=str(tmp_path))
    for args in (["status"], ["down"], ["kill", "manager1"], ["heal"]):
        res = subprocess.run([SWARM_LAB, *args], capture_output=True, text=True, env=env)
        assert res.returncode == 1 and "not up" in res.stderr, (args, res.stderr)


def test_host_reaches_node_ip(shared_lab: Lab) -> None:
    ip = shared_lab.ip("manager1")
    listener = listen_in(shared_lab.net.netns_path("manager1"), ip, 7001)
    try:
        assert probe_from("/proc/self/ns/net", ip, 7001)
    finally:
        listener.kill()
        listener.wait()


def test_service_runs_and_node_survives_kill_and_start(shared_lab: Lab, demo_image: str) -> None:
    node_id = shared_lab.node_id("manager1")
    shared_lab.swarm("manager1", "service", "create", "--name", "labsvc", "--detach",
                     demo_image, "sleep", "600")

    def running_containers() -> list[str]:
        return shared_lab.podman("manager1", "ps", "-q", "--filter", f"label={LABEL_NODE}={node_id}",
                                 "--filter", "label=com.shoal.service.name=labsvc").stdout.split()

    first = Lab.wait_for(running_containers, 30, "the service's container to run")
    old_pid = shared_lab.pid("manager1")
    res = swarm_lab(shared_lab, "kill", "manager1")
    assert res.returncode == 0, res.stderr
    assert shared_lab.pid("manager1") is None
    assert old_pid is not None and not process_alive(old_pid)
    res = swarm_lab(shared_lab, "start", "manager1")
    assert res.returncode == 0, res.stderr
    new_pid = shared_lab.wait_running("manager1")
    assert new_pid != old_pid
    assert new_pid in pids_in_netns(shared_lab.net.netns_name("manager1"))
    assert swarm_lab(shared_lab, "exec", "manager1", "--", "hostname").stdout.strip() == "manager1"

    def task_running() -> bool:
        out = shared_lab.swarm("manager1", "service", "ps", "labsvc", "--format",
                               "{{.CurrentState}}").stdout
        return out.startswith("Running")
    Lab.wait_for(task_running, 30, "the task to be reported running after the restart")
    assert running_containers() == first


def test_partition_and_heal_between_bare_namespaces() -> None:
    root = new_lab_root()
    index = next(i for i in range(200, 256) if not bridge_exists(f"shoallab{i}"))
    net = NetLab(StateFile(root / "lab.json"), Underlay.indexed(index))
    net.create()
    listeners = []
    try:
        ips = {name: net.add_node(name) for name in ("a", "b", "c")}
        for name in ("b", "c"):
            listeners.append(listen_in(net.netns_path(name), ips[name], 7002))
        a = net.netns_path("a")
        assert probe_from(a, ips["b"], 7002) and probe_from(a, ips["c"], 7002)
        net.partition(["a"], ["b"])
        assert not probe_from(a, ips["b"], 7002)
        assert probe_from(a, ips["c"], 7002), "a partition cuts only the named nodes"
        assert probe_from("/proc/self/ns/net", ips["b"], 7002), "the host reaches every node"
        listeners.append(listen_in(a, ips["a"], 7003))
        assert not probe_from(net.netns_path("b"), ips["a"], 7003)
        assert probe_from(net.netns_path("c"), ips["a"], 7003)
        net.heal()
        assert probe_from(a, ips["b"], 7002)
        assert probe_from(net.netns_path("b"), ips["a"], 7003)
    finally:
        for proc in listeners:
            proc.kill()
            proc.wait()
        assert net.destroy() == []
    for name in ("a", "b", "c"):
        assert not (NETNS_DIR / net.netns_name(name)).exists()
    with IPRoute() as ipr:
        assert not [link for link in ipr.get_links()
                    if link.get_attr("IFLA_IFNAME").startswith(net.underlay.bridge)]
    assert not StateFile(root / "lab.json").exists()
    shutil.rmtree(root)


def test_a_new_lab_sweeps_what_a_killed_owner_left_on_its_underlay() -> None:
    """A lab whose owner died before `destroy()` (its state file gone with its
    temporary directory) leaves namespaces, veths, a process and nft tables; the
    next lab on that underlay removes them and comes up."""
    index = next(i for i in range(200, 256) if not bridge_exists(f"shoallab{i}"))
    first_root, second_root = new_lab_root(), new_lab_root()
    old = NetLab(StateFile(first_root / "lab.json"), Underlay.indexed(index))
    old.create()
    new = NetLab(StateFile(second_root / "lab.json"), Underlay.indexed(index))
    listener = None
    try:
        ips = {name: old.add_node(name) for name in ("a", "b")}
        listener = listen_in(old.netns_path("a"), ips["a"], 7004)
        orphan_pid = listener.pid
        with IPRoute() as ipr:   # the owner is gone: its bridge went, the rest stayed
            ipr.link("del", index=ipr.link_lookup(ifname=old.underlay.bridge)[0])
        shutil.rmtree(first_root)
        assert (NETNS_DIR / old.netns_name("a")).exists()
        new.create()
        listener.wait(timeout=10)
        assert not process_alive(orphan_pid)
        for name in ("a", "b"):
            assert not (NETNS_DIR / old.netns_name(name)).exists()
        assert new.add_node("a") == ips["a"]   # the names the orphans held are free again
    finally:
        if listener is not None and listener.poll() is None:
            listener.kill()
            listener.wait()
        assert new.destroy() == []
        shutil.rmtree(first_root, ignore_errors=True)
        shutil.rmtree(second_root, ignore_errors=True)
    with IPRoute() as ipr:
        assert not [link for link in ipr.get_links()
                    if link.get_attr("IFLA_IFNAME").startswith(new.underlay.bridge)]
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    assert new.underlay.table not in tables.split()


def test_down_after_daemons_were_killed_leaves_nothing(lab: Lab, demo_image: str) -> None:
    node_id = lab.node_id("manager1")
    storage = lab.storage("manager1")
    assert storage is not None
    lab.swarm("manager1", "service", "create", "--name", "crashsvc", "--detach",
              demo_image, "sleep", "600")
    Lab.wait_for(lambda: lab.podman("manager1", "ps", "-q", "--filter",
                                    f"label={LABEL_NODE}={node_id}").stdout.split(),
                 30, "the service's container to run")
    assert mounts_under(storage.base), "a running container has its overlay mounted"
    pid = lab.pid("manager1")
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    bridge, table = lab.net.underlay.bridge, lab.net.underlay.table
    res = swarm_lab(lab, "down")
    assert res.returncode == 0, res.stderr
    assert leftovers(lab, ["manager1"], bridge, table) == []
    assert not storage.base.exists()
    assert podman("ps", "-aq", "--filter", f"label={LABEL_NODE}={node_id}").stdout == ""
    res = swarm_lab(lab, "down")
    assert res.returncode == 1 and "not up" in res.stderr


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_nodes_have_their_own_storage_and_pull_through_their_namespace(
        demo_image: str) -> None:
    with lab_cluster(managers=1, workers=1) as two:
        two.wait_ready()
        mine, other = two.storage("manager1"), two.storage("worker1")
        assert mine is not None and other is not None and mine.base != other.base
        for name, storage in (("manager1", mine), ("worker1", other)):
            # container storage lives next to the data directory, never inside it
            assert two.data_dir(name) not in storage.base.parents
            service = [pid for pid in pids_in_netns(two.net.netns_name(name))
                       if "system service" in _cmdline(pid)]
            assert service, f"{name}'s podman service runs in its namespace"
            assert f"--root {storage.options.root} " in _cmdline(service[0])
        # a fresh node holds no image; 127.0.0.1:5000 is not the registry in its namespace
        for name in ("manager1", "worker1"):
            assert two.podman(name, "image", "exists", demo_image).returncode == 1
        assert not probe_from(two.net.netns_path("manager1"), "127.0.0.1", 5000)
        # so this pull went through the node's namespace to the registry's underlay address
        two.podman("manager1", "pull", "--quiet", demo_image, check=True)
        assert two.podman("manager1", "image", "exists", demo_image).returncode == 0
        assert two.podman("worker1", "image", "exists", demo_image).returncode == 1, \
            "an image pulled on one node is not on another"
        # the daemon of a node pulls by itself when a task needs the image
        two.swarm("manager1", "service", "create", "--name", "pinned", "--detach",
                  "--constraint", "node.hostname==worker1", demo_image, "sleep", "600")
        worker_id = two.node_id("worker1")
        running = Lab.wait_for(
            lambda: two.podman("worker1", "ps", "-q", "--filter",
                               f"label={LABEL_NODE}={worker_id}").stdout.split(),
            60, "the pinned task's container running on worker1")
        assert two.podman("worker1", "image", "exists", demo_image).returncode == 0
        assert running[0] not in two.podman("manager1", "ps", "-aq").stdout
        assert podman("ps", "-aq", "--filter", f"label={LABEL_NODE}={worker_id}").stdout == "", \
            "the host's storage holds none of the lab's containers"
    assert not mine.base.exists() and not other.base.exists()


def test_multi_node_up_needs_join(tmp_path: Path) -> None:
    probe = Lab(tmp_path, underlay_index=99)
    if probe.join_available():
        with lab_cluster(managers=1, workers=1) as two:
            two.wait_ready()
            assert [n.name for n in two.nodes()] == ["manager1", "worker1"]
            out = two.swarm("manager1", "node", "ls", "--format", "{{.Hostname}}").stdout
            assert sorted(out.split()) == ["manager1", "worker1"]
            assert two.role("worker1") == "worker"
        return
    env = dict(os.environ, SHOAL_LAB_DIR=str(probe.root), SHOAL_LAB_INDEX="99")
    res = subprocess.run([SWARM_LAB, "up", "--managers", "2"], capture_output=True,
                         text=True, env=env, timeout=60)
    assert res.returncode == 1
    assert "swarm join is not available yet" in res.stderr
    assert not probe.state.exists()
    with IPRoute() as ipr:
        assert not ipr.link_lookup(ifname="shoallab99")


def test_remove_takes_the_node_and_its_containers_away(lab: Lab, demo_image: str) -> None:
    node_id = lab.node_id("manager1")
    storage = lab.storage("manager1")
    assert storage is not None
    lab.swarm("manager1", "service", "create", "--name", "gone", "--detach",
              demo_image, "sleep", "600")
    Lab.wait_for(lambda: lab.podman("manager1", "ps", "-q", "--filter",
                                    f"label={LABEL_NODE}={node_id}").stdout.split(),
                 30, "the service's container to run")
    netns_name = lab.net.netns_name("manager1")
    res = swarm_lab(lab, "remove", "manager1")
    assert res.returncode == 0, res.stderr
    assert not (NETNS_DIR / netns_name).exists()
    assert not storage.base.exists() and mounts_under(storage.base) == []
    assert pids_using(str(storage.base)) == [], "no conmon or podman of the node is left"
    assert not (lab.root / "nodes" / "manager1").exists()
    assert swarm_lab(lab, "status", "--format", "{{.Name}}").stdout.strip() == ""
    res = swarm_lab(lab, "kill", "manager1")
    assert res.returncode == 1 and "unknown node 'manager1'" in res.stderr
