"""Scraping a lab's metrics: a client certificate, direct scrapes, a real Prometheus.

A lab brought up with `metrics_port` (lab.cluster.Lab) has every node serve
`/metrics` on its underlay IP over mutual TLS. This module owns what a
scraper needs for it: a client certificate issued by the lab cluster's own
root CA (read from manager1's data directory, as an operator holding the CA
would issue one), `scrape` (one node, from this process), `Scraper` (every
node every second, in a thread: the benchmarks' load) and `Prometheus`
(Debian's `prometheus` server scraping every node every second, queried
through its HTTP API). The node certificates carry their role as a DNS name
(`swarm-manager` / `swarm-worker`), which is the name the scrapers verify.
"""
from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from lab.cluster import Lab
from node import credentials
from node.state import NodeState
from pki import node as pkinode

CLIENT_NAME = "prometheus"   # the client certificate's CN (node ID field)


@dataclass(frozen=True)
class ClientFiles:
    """PEM files a scraper presents and trusts."""
    ca: Path
    cert: Path
    key: Path


def issue_client_certificate(lab: Lab, directory: Path, issuer: str = "manager1") -> ClientFiles:
    """A client certificate from the lab cluster's root CA, written to `directory`."""
    data_dir = lab.data_dir(issuer)
    dek = credentials.open_manager_keys(data_dir)
    root = credentials.root_ca(data_dir, dek)
    cluster_id = NodeState.load(data_dir).cluster_id
    key_pem, csr_pem = pkinode.new_key_and_csr(CLIENT_NAME)
    cert_pem = root.issue(csr_pem, CLIENT_NAME, "worker", cluster_id)
    directory.mkdir(parents=True, exist_ok=True)
    files = ClientFiles(directory / "ca.pem", directory / "client.pem", directory / "client.key")
    files.ca.write_bytes(root.cert_pem)
    files.cert.write_bytes(cert_pem)
    files.key.touch(mode=0o600)
    files.key.write_bytes(key_pem)
    return files


def server_name(lab: Lab, name: str) -> str:
    """The DNS name a node's certificate holds for its role."""
    return "swarm-manager" if lab.role(name) == "manager" else "swarm-worker"


def client_context(files: ClientFiles) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(files.ca))
    context.load_cert_chain(str(files.cert), str(files.key))
    return context


def scrape(lab: Lab, name: str, files: ClientFiles, context: Optional[ssl.SSLContext] = None,
           timeout: float = 5.0) -> bytes:
    """One scrape of a node's /metrics over mutual TLS."""
    assert lab.metrics_port is not None, "the lab was not brought up with metrics_port"
    context = context or client_context(files)
    request = (f"GET /metrics HTTP/1.1\r\nHost: {lab.ip(name)}\r\n"
               "Connection: close\r\n\r\n").encode()
    with socket.create_connection((lab.ip(name), lab.metrics_port), timeout=timeout) as raw:
        with context.wrap_socket(raw, server_hostname=server_name(lab, name)) as tls:
            tls.sendall(request)
            chunks = []
            while chunk := tls.recv(65536):
                chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.0 200") and not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"{name}: {head.splitlines()[0].decode(errors='replace')}")
    return body


class Scraper:
    """Scrapes every node of the lab every `period` seconds in a thread (like Prometheus
    would), counting scrapes and failures."""

    def __init__(self, lab: Lab, files: ClientFiles, period: float = 1.0) -> None:
        self.lab, self.files, self.period = lab, files, period
        self.scrapes = 0
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lab-scraper", daemon=True)

    def _run(self) -> None:
        context = client_context(self.files)
        while not self._stop.is_set():
            started = time.monotonic()
            for name in self.lab.names():
                if self.lab.pid(name) is None:
                    continue
                try:
                    scrape(self.lab, name, self.files, context)
                    self.scrapes += 1
                except (OSError, RuntimeError):
                    self.failures += 1
            self._stop.wait(max(0.0, self.period - (time.monotonic() - started)))

    def __enter__(self) -> "Scraper":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def free_local_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Prometheus:
    """Debian's prometheus server scraping every lab node every second."""

    def __init__(self, lab: Lab, files: ClientFiles, directory: Path) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError("prometheus is not installed: apt-get install prometheus "
                               "(scripts/setup.sh does)")
        self.lab, self.directory = lab, directory
        self.port = free_local_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = directory / "prometheus.yml"
        config.write_text(json.dumps(self._config(files), indent=1))  # YAML is a JSON superset
        self.log = directory / "prometheus.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [binary, f"--config.file={config}", f"--storage.tsdb.path={directory / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=str(directory))

    def _config(self, files: ClientFiles) -> dict[str, Any]:
        jobs = []
        for role in ("manager", "worker"):
            targets = [f"{self.lab.ip(n)}:{self.lab.metrics_port}" for n in self.lab.names()
                       if self.lab.role(n) == role]
            if not targets:
                continue
            jobs.append({
                "job_name": f"shoal-{role}s", "scheme": "https",
                "tls_config": {"ca_file": str(files.ca), "cert_file": str(files.cert),
                               "key_file": str(files.key), "server_name": f"swarm-{role}"},
                "static_configs": [{"targets": targets}]})
        return {"global": {"scrape_interval": "1s", "scrape_timeout": "1s",
                           "evaluation_interval": "1s"},
                "scrape_configs": jobs}

    def wait_ready(self, timeout: float = 30.0) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited ({self.process.returncode}): "
                                   f"{self.log.read_text(errors='replace')[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                    return bool(resp.status == 200)
            except OSError:
                return False
        self.lab.wait_for(ready, timeout, "prometheus ready", interval=0.2)

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector ([{"metric": {...}, "value": [t, "v"]}, ...])."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=10) as resp:
            answer = json.load(resp)
        if answer.get("status") != "success":
            raise RuntimeError(f"prometheus refused {expr!r}: {answer}")
        return list(answer["data"]["result"])

    def scalar(self, expr: str) -> Optional[float]:
        """The value of a one-element result (None when the result is empty)."""
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def targets(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{self.url}/api/v1/targets", timeout=10) as resp:
            return list(json.load(resp)["data"]["activeTargets"])

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
