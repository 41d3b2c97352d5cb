"""Store benchmark: commit latency and batched throughput of raft/ on this host.

Run with `python -m lab.bench.store`.  Prints one figure per line:
single-object write latency (p50/p99) on one node, objects committed per
second when batched (100 tasks per transaction), the same latency on a
3-node loopback cluster (written on the leader and on a follower), and
concurrent writes from asyncio (one loop, many writers in flight).
Journal entries are fdatasync'd, as in production.  `--raft-security`
picks how the 3 nodes talk: mutual TLS with manager certificates (as the
daemon does), pysyncobj's password encryption, or plain TCP. Payloads are
encrypted with a data key (AES-256-GCM), as a manager's store is, unless
`--data-key off` (to see what encryption at rest costs).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import tempfile
import time
from typing import Sequence

from pki import node as pkinode
from pki.ca import RootCA
from pki.raft_tls import RaftTLS
from pki.tokens import DataCipher
from proto import model
from proto import objects_pb2 as pb
from raft import actions
from raft.history import DEFAULT_MAX_EVENTS
from raft.store import Store


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pct(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _task() -> pb.Task:
    t = pb.Task(id=model.new_id(), service_id="s" * 25, node_id="n" * 25, slot=1)
    t.spec.container.image = "registry.local/busybox:latest"
    t.annotations.name = "bench.1"
    return t


def _latency(store: Store, n: int) -> list[float]:
    for _ in range(20):  # warm up
        store.commit([actions.create(_task())])
    samples = []
    for _ in range(n):
        action = actions.create(_task())
        start = time.perf_counter()
        store.commit([action])
        samples.append(time.perf_counter() - start)
    return samples


def _throughput(store: Store, per_txn: int, seconds: float) -> float:
    done = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        store.commit([actions.create(_task()) for _ in range(per_txn)])
        done += per_txn
    return done / (time.perf_counter() - start)


def _async_throughput(store: Store, writers: int, seconds: float) -> float:
    async def main() -> int:
        stop = time.perf_counter() + seconds
        count = 0

        async def writer() -> None:
            nonlocal count
            while time.perf_counter() < stop:
                await store.acommit([actions.create(_task())])
                count += 1

        await asyncio.gather(*(writer() for _ in range(writers)))
        return count

    start = time.perf_counter()
    n = asyncio.run(main())
    return n / (time.perf_counter() - start)


def _security(kind: str, root: RootCA, node_id: str) -> dict:
    """Store arguments for one node of the 3-node cluster."""
    if kind == "password":
        return {"password": "bench-raft-key"}
    if kind == "tls":
        key, csr = pkinode.new_key_and_csr(node_id)
        creds = pkinode.NodeCredentials(key, root.issue(csr, node_id, "manager", "bench"),
                                        root.cert_pem)
        return {"tls": RaftTLS(lambda: creds)}
    return {}


def _line(name: str, value: float, unit: str) -> None:
    print(f"{name}: {value:.2f} {unit}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=500, help="latency samples per setup")
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of throughput runs")
    parser.add_argument("--batch", type=int, default=100, help="tasks per transaction")
    parser.add_argument("--raft-security", choices=("tls", "password", "plain"), default="tls",
                        help="transport between the 3 nodes (default: tls, as the daemon)")
    parser.add_argument("--data-key", choices=("on", "off"), default="on",
                        help="encrypt payloads with a data key, as managers do (default: on)")
    parser.add_argument("--watch-history", choices=("on", "off"), default="on",
                        help="off: the stores skip recording events for Watch replays "
                             "(raft/history.py), to measure what that costs (default: on)")
    args = parser.parse_args()
    # a measurement switch only (the daemon always keeps a history): 0 events is off
    history: dict = {"history_events": 0 if args.watch_history == "off" else DEFAULT_MAX_EVENTS}
    print(f"watch history: {args.watch_history}", flush=True)
    cipher: dict = {}
    if args.data_key == "on":
        data_key = DataCipher(os.urandom(32))
        cipher = {"encrypt": data_key.encrypt, "decrypt": data_key.decrypt}
    print(f"payload encryption at rest: {args.data_key}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        store = Store("bench", tmp, f"127.0.0.1:{_port()}", **cipher, **history)
        store.start()
        store.wait_ready(10)
        lat = _latency(store, args.writes)
        _line("1 node write latency p50", _pct(lat, 0.5) * 1e3, "ms")
        _line("1 node write latency p99", _pct(lat, 0.99) * 1e3, "ms")
        _line("1 node write latency mean", statistics.mean(lat) * 1e3, "ms")
        _line(f"1 node batched objects/s ({args.batch} per txn)",
              _throughput(store, args.batch, args.seconds), "objects/s")
        _line("1 node single-object txns/s (asyncio, 32 writers)",
              _async_throughput(store, 32, args.seconds), "txns/s")
        store.close()

    with tempfile.TemporaryDirectory() as tmp:
        addrs = [f"127.0.0.1:{_port()}" for _ in range(3)]
        root = RootCA.create()
        stores = [Store(f"bench{i}", f"{tmp}/n{i}", a, peers=[p for p in addrs if p != a],
                        **_security(args.raft_security, root, f"bench{i}"), **cipher,
                        **history)
                  for i, a in enumerate(addrs)]
        print(f"3 nodes raft transport: {args.raft_security}", flush=True)
        for s in stores:
            s.start()
        for s in stores:
            s.wait_ready(15)
        deadline = time.monotonic() + 15
        while not any(s.is_leader() for s in stores) and time.monotonic() < deadline:
            time.sleep(0.01)
        leader = next(s for s in stores if s.is_leader())
        follower = next(s for s in stores if s is not leader)
        lat = _latency(leader, args.writes)
        _line("3 nodes write latency p50 (on leader)", _pct(lat, 0.5) * 1e3, "ms")
        _line("3 nodes write latency p99 (on leader)", _pct(lat, 0.99) * 1e3, "ms")
        lat = _latency(follower, args.writes)
        _line("3 nodes write latency p50 (on follower)", _pct(lat, 0.5) * 1e3, "ms")
        _line("3 nodes write latency p99 (on follower)", _pct(lat, 0.99) * 1e3, "ms")
        _line(f"3 nodes batched objects/s ({args.batch} per txn)",
              _throughput(leader, args.batch, args.seconds), "objects/s")
        for s in stores:
            s.close()


if __name__ == "__main__":
    main()
