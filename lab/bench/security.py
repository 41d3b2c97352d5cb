"""Security benchmarks on a 3-manager + 2-worker lab: root CA rotation, autolock, unlock.

- rotation: `swarm ca --rotate -d` → the rotation finished (every node holds a
  certificate from the new root, the old root dropped from the cluster object);
- re-wrap: `swarm update --autolock=true` → every manager's data key wrapped
  by the printed unlock key (read from each manager's key files);
- unlock: a manager restarted locked; `swarm unlock` with the key → the other
  managers see it Reachable again (the CLI's own run time is printed apart).

Progress is polled over the managers' local sockets every 20 ms, so the CLI's
start-up is counted once, as a user would pay it. Prints one figure per line.
Run: `python -m lab.bench.security [--runs 3]`.
"""
from __future__ import annotations

import argparse
import re
import statistics
import time
from typing import Sequence

import grpc

from lab.cluster import Lab
from pki import keystore
from pki import node as pkinode
from pki.ca import load_certificates
from proto import control_pb2 as cpb
from proto import control_pb2_grpc
from proto import objects_pb2 as pb
from tests.labfixtures import lab_cluster

MANAGERS = ("manager1", "manager2", "manager3")
KEY_RE = re.compile(r"SWMKEY-1-[A-Za-z0-9+/]+")
POLL = 0.02


_STUBS: dict[str, control_pb2_grpc.ControlStub] = {}


def _control(lab: Lab, node: str) -> control_pb2_grpc.ControlStub:
    """One channel per node's local socket, kept for every poll."""
    path = f"unix://{lab.data_dir(node)}/swarm.sock"
    if path not in _STUBS:
        _STUBS[path] = control_pb2_grpc.ControlStub(grpc.insecure_channel(path))
    return _STUBS[path]


def rotation(lab: Lab) -> float:
    """Seconds from `swarm ca --rotate -d` to the end of the rotation."""
    api = _control(lab, "manager1")
    before = api.GetCluster(cpb.GetClusterRequest(), timeout=10).cluster.root_ca_cert
    start = time.perf_counter()
    lab.swarm("manager1", "ca", "--rotate", "-d")

    def finished() -> bool:
        cluster = api.GetCluster(cpb.GetClusterRequest(), timeout=10).cluster
        return not cluster.HasField("root_rotation") and cluster.root_ca_cert != before
    Lab.wait_for(finished, 120, "the root rotation to finish", interval=POLL)
    elapsed = time.perf_counter() - start
    root = load_certificates(api.GetCluster(cpb.GetClusterRequest(), timeout=10)
                             .cluster.root_ca_cert)[0]
    for name in lab.names():   # what "finished" promises, checked on every node's disk
        leaf = load_certificates(
            (pkinode.cert_dir(lab.data_dir(name)) / pkinode.CERT_FILE).read_bytes())[0]
        leaf.verify_directly_issued_by(root)
    return elapsed


def rewrap(lab: Lab) -> float:
    """Seconds from `swarm update --autolock=true` to every manager's DEK wrapped by the key."""
    start = time.perf_counter()
    out = lab.swarm("manager1", "update", "--autolock=true").stdout
    found = KEY_RE.search(out)
    if found is None:
        raise RuntimeError(f"swarm update --autolock=true printed no unlock key: {out!r}")
    key = found.group(0)
    for name in MANAGERS:
        keys = keystore.ManagerKeys(lab.data_dir(name))
        Lab.wait_for(lambda: keys.wrapped_by(key), 30, f"{name}'s data key re-wrapped",
                     interval=POLL)
    return time.perf_counter() - start


def reachable(lab: Lab, name: str) -> bool:
    node_id = lab.node_id(name)
    try:
        nodes = _control(lab, "manager1").ListNodes(cpb.ListNodesRequest(), timeout=5).nodes
    except grpc.RpcError:
        return False
    return any(n.id == node_id and n.manager_status.reachability == pb.ManagerStatus.REACHABLE
               for n in nodes)


def unlock(lab: Lab, key: str, name: str = "manager3") -> tuple[float, float]:
    """(seconds of the `swarm unlock` CLI, seconds until the others see it Reachable)."""
    lab.kill(name)
    lab.start(name)
    if not lab.locked(name):
        raise AssertionError(f"{name} did not restart locked")
    Lab.wait_for(lambda: not reachable(lab, name), 60, f"{name} Unreachable", interval=POLL)
    start = time.perf_counter()
    res = lab.exec(name, *lab._swarm_argv("unlock"), input=key + "\n", timeout=120)
    cli = time.perf_counter() - start
    if res.returncode != 0:
        raise AssertionError(f"swarm unlock failed: {res.stderr}")
    Lab.wait_for(lambda: reachable(lab, name), 60, f"{name} Reachable", interval=POLL)
    return cli, time.perf_counter() - start


def _report(name: str, samples: Sequence[float]) -> None:
    print(f"{name}: best {min(samples):.2f} s, median {statistics.median(samples):.2f} s "
          f"({', '.join(f'{s:.2f}' for s in samples)})", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.bench.security",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    opts = parser.parse_args(argv)
    with lab_cluster(3, 2) as lab:
        lab.wait_ready(timeout=60)
        _report("root CA rotation, 5 nodes (ca --rotate -d -> finished)",
                [rotation(lab) for _ in range(opts.runs)])
        rewraps, clis, unlocks = [], [], []
        for _ in range(opts.runs):
            rewraps.append(rewrap(lab))
            key = lab.swarm("manager1", "unlock-key", "-q").stdout.strip()
            cli, total = unlock(lab, key)
            clis.append(cli)
            unlocks.append(total)
            lab.swarm("manager1", "update", "--autolock=false")
        _report("autolock on -> 3 managers' data keys re-wrapped", rewraps)
        _report("swarm unlock CLI on a locked manager", clis)
        _report("swarm unlock -> the manager Reachable again", unlocks)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
