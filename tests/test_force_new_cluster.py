"""Backup and restore: reading a manager's raft state offline and `swarm init --force-new-cluster`."""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from proto import model
from proto import objects_pb2 as pb
from raft import actions, recovery
from raft.errors import Conflict
from raft.replica import RaftTuning, read_snapshot_file
from raft.store import Store
from tests.test_store import FAST, free_port

REPO = Path(__file__).resolve().parent.parent
SNAPSHOTTING = RaftTuning(heartbeat=0.05, election_min=0.2, election_max=0.4,
                          connection_timeout=1.0, compaction_entries=10)


def _reverse(data: bytes) -> bytes:
    return data[::-1]


def _service(name: str) -> pb.Service:
    svc = pb.Service(id=model.new_id(), spec_version=1)
    svc.spec.annotations.name = name
    return svc


def _wait_snapshot(raft_dir: Path, timeout: float = 20.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return read_snapshot_file(str(raft_dir / "snapshot"))[0][0][1]
        except (OSError, EOFError):
            time.sleep(0.05)
    raise AssertionError("the store wrote no raft snapshot")


def _all_objects(view) -> dict:
    return {kind: dict(view.table(kind)) for kind in model.KINDS}


def _fill_store(data_dir: Path) -> tuple[dict, int]:
    """A real store: a snapshot (automatic compaction), then journal entries after it,
    among them updates, removes and a transaction the store refused."""
    store = Store("node1", str(data_dir), f"127.0.0.1:{free_port()}", tuning=SNAPSHOTTING,
                  encrypt=_reverse, decrypt=_reverse)
    store.start()
    try:
        store.wait_ready(10)
        services = []
        for i in range(25):
            svc = _service(f"svc{i}")
            store.commit([actions.create(svc), actions.create(pb.Task(id=model.new_id(),
                                                                      service_id=svc.id))])
            services.append(svc.id)
        snapshot_index = _wait_snapshot(data_dir / "raft")
        assert snapshot_index > 0
        # after the snapshot: updates, removes, new kinds, and a refused transaction
        first = store.get("service", services[0])
        renamed = pb.Service()
        renamed.CopyFrom(first)
        renamed.spec.annotations.name = "renamed"
        store.commit([actions.update(renamed)])
        store.commit([actions.remove(store.get("service", services[1]))])
        net = pb.Network(id=model.new_id())
        net.spec.annotations.name = "backend"
        secret = pb.Secret(id=model.new_id())
        secret.spec.annotations.name = "token"
        secret.spec.data = b"s3cret"
        store.commit([actions.create(net), actions.create(secret)])
        with pytest.raises(Conflict):
            store.commit([actions.create(_service("svc5"))])  # name in use: refused
        store.commit([actions.create(_service("last"))])
        expected = _all_objects(store.snapshot())
        return expected, store.version
    finally:
        store.close()


def test_read_local_state_replays_snapshot_and_journal(tmp_path: Path) -> None:
    expected, version = _fill_store(tmp_path)
    local = recovery.read_local_state(tmp_path, decrypt=_reverse)

    assert local.snapshot_index > 0
    assert local.last_index > local.snapshot_index
    assert local.replayed >= 5  # the transactions after the snapshot
    assert len(local.skipped) == 1 and "already in use" in local.skipped[0]
    assert local.state.version == version
    assert _all_objects(local.state.snapshot()) == expected  # meta (versions, times) included
    assert local.state.by_name("service", "renamed") is not None
    assert local.state.by_name("secret", "token").spec.data == b"s3cret"
    assert len(local.members) == 1 and local.members[0].startswith("127.0.0.1:")


def test_read_local_state_without_snapshot_and_refusals(tmp_path: Path) -> None:
    store = Store("node1", str(tmp_path / "a"), f"127.0.0.1:{free_port()}", tuning=FAST)
    store.start()
    try:
        store.wait_ready(10)
        store.commit([actions.create(_service("only"))])
        want = _all_objects(store.snapshot())
    finally:
        store.close()
    local = recovery.read_local_state(tmp_path / "a")
    assert local.snapshot_index == 0 and local.replayed == 1
    assert _all_objects(local.state.snapshot()) == want

    _fill_store(tmp_path / "c")
    with pytest.raises(recovery.RecoveryError, match="wrong key, or corrupt"):
        recovery.read_local_state(tmp_path / "c")  # encrypted, read without the key
    with pytest.raises(recovery.NoManagerState):
        recovery.read_local_state(tmp_path / "empty")
    (tmp_path / "empty" / "raft").mkdir(parents=True)
    with pytest.raises(recovery.NoManagerState):
        recovery.read_local_state(tmp_path / "empty")


def test_force_new_cluster_keeps_every_object_and_demotes_other_managers(tmp_path: Path) -> None:
    data_dir = tmp_path / "m1"
    port = free_port()
    store = Store("me", str(data_dir), f"127.0.0.1:{port}", tuning=SNAPSHOTTING)
    store.start()
    try:
        store.wait_ready(10)
        cluster = pb.Cluster(id=model.new_id(), root_ca_cert=b"CA")
        cluster.spec.annotations.name = "default"
        nodes = []
        for node_id, role in (("me", pb.MANAGER), ("m2", pb.MANAGER), ("w1", pb.WORKER)):
            node = pb.Node(id=node_id, role=role)
            node.spec.desired_role = role
            node.status.state = pb.NodeStatus.READY
            if role == pb.MANAGER:
                node.manager_status.addr = f"10.0.0.{len(nodes) + 1}:2377"
                node.manager_status.raft_addr = f"10.0.0.{len(nodes) + 1}:2378"
            nodes.append(node)
        store.commit([actions.create(cluster), *(actions.create(n) for n in nodes)])
        for i in range(15):
            store.commit([actions.create(_service(f"s{i}"))])
        _wait_snapshot(data_dir / "raft")
        store.commit([actions.create(_service("after-snapshot"))])
        before = _all_objects(store.snapshot())
    finally:
        store.close()

    new_port = free_port()
    rebuilt = recovery.force_new_cluster(data_dir, "me", f"127.0.0.1:{new_port}",
                                         f"127.0.0.1:{new_port}", "127.0.0.1:4000",
                                         tuning=FAST)
    assert rebuilt.old_raft_dir.is_dir() and rebuilt.old_raft_dir.name.startswith("raft.old-")
    assert not (data_dir / recovery.STAGING_DIR).exists()
    assert rebuilt.adjustments == 2 and rebuilt.objects == sum(map(len, before.values()))

    # the next start (as the daemon does it: no peers) has everything, and only itself in raft
    store = Store("me", str(data_dir), f"127.0.0.1:{new_port}", tuning=FAST)
    store.start()
    try:
        store.wait_ready(10)
        assert store.members() == [f"127.0.0.1:{new_port}"]
        after = _all_objects(store.snapshot())
        assert {k: set(v) for k, v in after.items()} == {k: set(v) for k, v in before.items()}
        for kind in ("service", "cluster", "task", "network", "secret", "config"):
            assert after[kind] == before[kind], kind  # untouched, meta included
        assert after["node"]["w1"] == before["node"]["w1"]
        me, m2 = after["node"]["me"], after["node"]["m2"]
        assert me.role == pb.MANAGER and me.manager_status.leader
        assert me.manager_status.addr == "127.0.0.1:4000"
        assert me.manager_status.raft_addr == f"127.0.0.1:{new_port}"
        assert me.meta.created_at == before["node"]["me"].meta.created_at
        assert m2.role == pb.WORKER and m2.spec.desired_role == pb.WORKER
        assert not m2.HasField("manager_status") and m2.status.state == pb.NodeStatus.DOWN
        store.commit([actions.create(_service("new-write"))])  # it is a working cluster
    finally:
        store.close()


def _swarm(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli.main", *args], capture_output=True,
                          text=True, cwd=str(REPO), timeout=timeout,
                          env=env or dict(os.environ, PYTHONPATH=str(REPO)))


def test_cli_refuses_without_manager_state(tmp_path: Path) -> None:
    res = _swarm("init", "--force-new-cluster", "--data-dir", str(tmp_path / "none"))
    assert res.returncode == 1
    assert "holds no manager state" in res.stderr
    worker = tmp_path / "worker"
    worker.mkdir()
    (worker / "node.json").write_text(json.dumps(dict(
        node_id="w", role="worker", advertise_addr="127.0.0.1:2377",
        listen_addr="127.0.0.1:2377", raft_addr="127.0.0.1:2378")))
    res = _swarm("init", "--force-new-cluster", "--data-dir", str(worker))
    assert res.returncode == 1 and "worker" in res.stderr
    res = _swarm("init", "--force-new-cluster", "--data-dir", str(worker),
                 "--task-history-limit", "3")
    assert res.returncode == 1 and "cannot be combined" in res.stderr


# ----------------------------------------------------------------- end to end --

def _copy_data_dir(src: Path, dst: Path) -> None:
    """A backup copy as an operator would take it: everything but unix sockets."""
    def ignore(directory: str, names: list[str]) -> list[str]:
        return [n for n in names if stat.S_ISSOCK(os.lstat(os.path.join(directory, n)).st_mode)]
    shutil.copytree(src, dst, ignore=ignore, symlinks=True)


@pytest.mark.e2e
def test_e2e_force_new_cluster_from_a_copy(tmp_path: Path) -> None:
    from lab import images
    from proto import control_pb2 as cpb
    from tests.cluster import SingleNode
    from tests.helpers import wait

    image = images.ensure_demo_image()
    node = SingleNode(tmp_path)
    restored = SingleNode(tmp_path / "restore")
    try:
        node.init()
        node.swarm("service", "create", "--name", "web", "--replicas", "2",
                   "--stop-grace-period", "1s", image, "sleep", "3600")
        node.swarm("service", "create", "--name", "idle", "--replicas", "0", image)
        net_spec = pb.NetworkSpec(driver="overlay")
        net_spec.annotations.name = "backend"
        net = node.api().CreateNetwork(cpb.CreateNetworkRequest(spec=net_spec), timeout=10).network
        sec_spec = pb.SecretSpec(data=b"hunter2")
        sec_spec.annotations.name = "db-password"
        secret = node.api().CreateSecret(cpb.CreateSecretRequest(spec=sec_spec), timeout=10).secret
        wait(lambda: len(node.running("web")) == 2, 30, "2 running web tasks")
        services = {s.id: s.spec.annotations.name for s in
                    node.api().ListServices(cpb.ListServicesRequest(), timeout=10).services}
        cluster = node.api().ListClusters(cpb.ListClustersRequest(), timeout=10).clusters[0]
        node.kill9()
        _copy_data_dir(node.data_dir, restored.data_dir)
        node.destroy()  # the original's containers and ports go away

        res = restored.swarm("init", "--force-new-cluster", "--data-dir", str(restored.data_dir),
                             "--listen-addr", f"127.0.0.1:{restored.port}")
        restored.node_id = node.node_id
        assert f"Swarm initialized: current node ({node.node_id}) is now a manager." in res.stdout
        state = json.loads((restored.data_dir / "node.json").read_text())
        assert state["advertise_addr"] == f"127.0.0.1:{restored.port}"
        assert state["raft_peers"] == [] and not state["creates_cluster"]
        assert list(restored.data_dir.glob("raft.old-*"))

        api = restored.api()
        got = {s.id: s.spec.annotations.name for s in
               api.ListServices(cpb.ListServicesRequest(), timeout=10).services}
        assert got == services
        assert api.GetNetwork(cpb.GetNetworkRequest(network_id=net.id), timeout=10) \
            .network.spec.annotations.name == "backend"
        assert api.GetSecret(cpb.GetSecretRequest(secret_id=secret.id), timeout=10) \
            .secret.spec.annotations.name == "db-password"
        after = api.ListClusters(cpb.ListClustersRequest(), timeout=10).clusters[0]
        assert after.id == cluster.id and after.root_ca_cert == cluster.root_ca_cert
        assert after.join_tokens == cluster.join_tokens
        ls = restored.swarm("node", "ls", "--format", "{{.ID}} {{.ManagerStatus}}").stdout
        assert node.node_id in ls and "Leader" in ls
        wait(lambda: len(restored.running("web")) == 2 and
             len(restored.containers("web")) == 2, 60, "web running again after the restore")
        # and it is a working cluster: new writes are accepted
        restored.swarm("service", "create", "-d", "--name", "after", "--replicas", "0", image)
    finally:
        node.destroy()
        restored.destroy()
