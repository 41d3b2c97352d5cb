"""What metrics cost: the store and cluster benchmarks with metrics served and scraped every
second, against metrics off, in the same run.

- store (lab.bench.store's figures, in this process): one-node write latency
  (p50, mean) and batched objects/s, on a fresh store per round; "on" serves
  the store's registry (instruments, cluster and raft gauges) on a loopback
  port and scrapes it every second from a thread, "off" serves nothing.
  Rounds alternate off/on so that drift hits both alike.
- cluster (lab.bench.cluster's convergence): N replicas (default 40) →
  running on a 3-manager + 2-worker lab; "on" = every node started with
  `--metrics-addr IP:9323 --metrics-tls` and scraped every second over mutual
  TLS, "off" = every node restarted with `--metrics-addr ""`. Blocks of runs
  alternate on/off/on/off (nodes restarted one at a time between blocks).

The instruments themselves are updated in both modes (they are plain code in
the store, dispatcher, leader loop and agent); their cost per update is
printed first. Run: `python -m lab.bench.metrics [--runs 3] [--replicas 40]`.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Callable, Optional, Sequence

from lab.bench.cluster import Bench
from lab.bench.store import _latency, _pct, _port, _throughput
from lab.cluster import Lab
from lab.images import ensure_demo_image
from lab.metricslab import ClientFiles, Scraper, issue_client_certificate
from metrics.collectors import ClusterCollector, RaftCollector
from metrics.instruments import NodeMetrics
from node.metricsserver import MetricsServer
from node.state import MetricsEndpoint
from pki.tokens import DataCipher
from raft.store import Store
from tests.labfixtures import lab_cluster

METRICS_PORT = 9323


def _instrument_cost() -> None:
    metrics = NodeMetrics()
    n = 200_000
    for what, update in (("histogram observe", lambda: metrics.store_write_seconds.observe(0.001)),
                         ("counter inc", metrics.dispatcher_heartbeats.inc)):
        started = time.perf_counter()
        for _ in range(n):
            update()
        print(f"instrument cost, {what}: {(time.perf_counter() - started) / n * 1e6:.2f} us",
              flush=True)


class _LoopbackScraper:
    """GETs a loopback /metrics every second in a thread; counts bytes and time spent."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.scrapes = 0
        self.seconds = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="bench-scraper")

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            with urllib.request.urlopen(self.url, timeout=10) as resp:
                resp.read()
            self.seconds += time.perf_counter() - started
            self.scrapes += 1
            self._stop.wait(1.0)

    def __enter__(self) -> "_LoopbackScraper":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def _store_round(on: bool, writes: int, seconds: float) -> tuple[float, float, float, str]:
    """(p50 s, mean s, objects/s, note) of one fresh store, metrics served or not."""
    cipher = DataCipher(os.urandom(32))
    metrics = NodeMetrics()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store("bench", tmp, f"127.0.0.1:{_port()}", encrypt=cipher.encrypt,
                      decrypt=cipher.decrypt, metrics=metrics)
        store.start()
        store.wait_ready(10)
        server: Optional[MetricsServer] = None
        scraper: Optional[_LoopbackScraper] = None
        try:
            if on:
                metrics.registry.register(ClusterCollector(store.list, lambda: store.version))
                metrics.registry.register(RaftCollector(store.raft_status))
                server = MetricsServer(MetricsEndpoint("127.0.0.1", 0, False), metrics.registry)
                server.start()
                scraper = _LoopbackScraper(f"http://127.0.0.1:{server.port}/metrics")
                scraper.__enter__()
            lat = _latency(store, writes)
            rate = _throughput(store, 100, seconds)
            tasks = len(store.list("task"))
        finally:
            if scraper is not None:
                scraper.__exit__()
            if server is not None:
                server.close()
            store.close()
    note = ""
    if scraper is not None and scraper.scrapes:
        note = (f" ({scraper.scrapes} scrapes, {scraper.seconds / scraper.scrapes * 1e3:.1f} ms "
                f"each; {tasks} tasks in the store at the end)")
    return _pct(lat, 0.5), statistics.mean(lat), rate, note


def store_bench(rounds: int, writes: int, seconds: float) -> None:
    results: dict[bool, list[tuple[float, float, float]]] = {False: [], True: []}
    for i in range(rounds * 2):
        on = i % 2 == 1
        p50, mean, rate, note = _store_round(on, writes, seconds)
        results[on].append((p50, mean, rate))
        print(f"  store round {i + 1} metrics {'on ' if on else 'off'}: p50 {p50 * 1e3:.3f} ms, "
              f"mean {mean * 1e3:.3f} ms, {rate:,.0f} objects/s{note}", flush=True)
    for index, what, unit, scale in ((0, "1 node write latency p50", "ms", 1e3),
                                     (1, "1 node write latency mean", "ms", 1e3),
                                     (2, "1 node batched objects/s (100 per txn)", "/s", 1.0)):
        off = statistics.median(r[index] for r in results[False]) * scale
        on_ = statistics.median(r[index] for r in results[True]) * scale
        print(f"{what}: off {off:,.3f} {unit}, on {on_:,.3f} {unit} (median of {rounds}; "
              f"{(on_ - off) / off * 100:+.1f}%)", flush=True)


def _restart_all(lab: Lab, flags: Callable[[str], list[str]]) -> None:
    """Restarts every node with `flags`, one at a time (managers keep their quorum)."""
    for name in sorted(lab.names(), key=lambda n: (lab.role(n) == "manager", n)):
        lab.kill(name)
        lab.start(name, *flags(name))      # returns once the daemon serves its socket
        lab.wait_ready(timeout=60)


def cluster_bench(runs: int, replicas: int, workdir: Path) -> None:
    image = ensure_demo_image()
    with lab_cluster(3, 2, metrics_port=METRICS_PORT) as lab:
        lab.wait_ready(timeout=60)
        files: ClientFiles = issue_client_certificate(lab, workdir / "client")
        bench = Bench(lab, image)
        bench.pull_everywhere()
        bench.converge(5)   # warm-up
        samples: dict[bool, list[float]] = {False: [], True: []}
        for block, on in enumerate((True, False, True, False)):
            if block:
                _restart_all(lab, _flags(lab, on))
                bench.converge(5)   # sessions settled after the restarts
            if on:
                with Scraper(lab, files) as scraper:
                    times = [bench.converge(replicas) for _ in range(runs)]
                extra = f" ({scraper.scrapes} scrapes, {scraper.failures} failed)"
            else:
                times = [bench.converge(replicas) for _ in range(runs)]
                extra = ""
            samples[on].extend(times)
            print(f"  converge block {block + 1} metrics {'on ' if on else 'off'}: "
                  f"{', '.join(f'{t:.2f}' for t in times)} s{extra}", flush=True)
    off, on_ = samples[False], samples[True]
    print(f"converge {replicas} replicas on 5 nodes, metrics off: best {min(off):.2f} s, "
          f"median {statistics.median(off):.2f} s", flush=True)
    print(f"converge {replicas} replicas on 5 nodes, metrics on + scraped every 1 s: best "
          f"{min(on_):.2f} s, median {statistics.median(on_):.2f} s "
          f"(median {(statistics.median(on_) - statistics.median(off)) / statistics.median(off) * 100:+.1f}%, "
          f"best {(min(on_) - min(off)) / min(off) * 100:+.1f}%)", flush=True)


def _flags(lab: Lab, on: bool) -> Callable[[str], list[str]]:
    def flags(name: str) -> list[str]:
        if on:
            return ["--metrics-addr", f"{lab.ip(name)}:{METRICS_PORT}", "--metrics-tls"]
        return ["--metrics-addr", ""]
    return flags


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.bench.metrics",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="converge runs per block, and "
                        "store rounds per mode")
    parser.add_argument("--replicas", type=int, default=40)
    parser.add_argument("--writes", type=int, default=500, help="store latency samples per round")
    parser.add_argument("--seconds", type=float, default=3.0, help="store throughput run length")
    parser.add_argument("--only", choices=("store", "cluster"), default=None)
    opts = parser.parse_args(argv)
    _instrument_cost()
    if opts.only != "cluster":
        store_bench(opts.runs, opts.writes, opts.seconds)
    if opts.only != "store":
        with tempfile.TemporaryDirectory(prefix="shoal-bench-metrics-") as tmp:
            cluster_bench(opts.runs, opts.replicas, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
