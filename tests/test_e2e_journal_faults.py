"""End to end: a manager's damaged raft journal, as `swarm daemon` reports it.

- A torn last record (a write a crash interrupted): `swarm daemon` starts the
  node, every service is there, and the node writes again.
- A damaged record in the middle: `swarm daemon` refuses to start, with one
  "Error: ..." line naming the journal file and the byte offset, exit code 1
  and no traceback, in the foreground and detached; the journal is left as
  it was.
"""
from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from lab import images
from lab.localnode import wait_for
from raft import journal as journal_module
from tests.cluster import SingleNode

pytestmark = pytest.mark.e2e


@pytest.fixture
def node(tmp_path):
    images.ensure_demo_image()
    n = SingleNode(tmp_path)
    try:
        n.init()
        yield n
    finally:
        n.destroy()


def _stop(node: SingleNode) -> None:
    pid = node.daemon_pid()
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not Path(f"/proc/{pid}").exists() or
             Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z", 30, "the daemon to stop")
    node.close_channel()


def _services(node: SingleNode) -> set[str]:
    return set(node.swarm("service", "ls", "--format", "{{.Name}}").stdout.split())


def _journal(node: SingleNode) -> Path:
    return node.data_dir / "raft" / "journal"


def test_a_torn_last_record_is_dropped_and_the_node_starts(node: SingleNode) -> None:
    image = images.ensure_demo_image()
    for i in range(5):
        node.swarm("service", "create", "-d", "--name", f"s{i}", "--replicas", "0", image)
    _stop(node)
    path = _journal(node)
    last = journal_module._parse(path.read_bytes())[1][-1]
    with open(path, "ab") as f:          # the first bytes of a write the crash cut short
        f.write(path.read_bytes()[last:][:40])
    node.restart()
    assert {f"s{i}" for i in range(5)} <= _services(node)
    node.swarm("service", "create", "-d", "--name", "after", "--replicas", "0", image)
    assert "after" in _services(node)
    assert "cut off a torn last record" in node.log_tail(400)


def test_a_corrupt_record_in_the_middle_refuses_to_start(node: SingleNode) -> None:
    image = images.ensure_demo_image()
    for i in range(5):
        node.swarm("service", "create", "-d", "--name", f"s{i}", "--replicas", "0", image)
    _stop(node)
    path = _journal(node)
    offsets = journal_module._parse(path.read_bytes())[1]
    bad = offsets[len(offsets) // 2]
    data = bytearray(path.read_bytes())
    data[bad + journal_module._RECORD.size + 1] ^= 0x20
    path.write_bytes(bytes(data))

    for mode in (["--foreground"], []):
        res = node.swarm("daemon", *mode, "--data-dir", str(node.data_dir), check=False,
                         timeout=60)
        assert res.returncode == 1, (mode, res.stdout, res.stderr)
        assert "Traceback" not in res.stderr, res.stderr
        errors = [line for line in res.stderr.splitlines() if line.startswith("Error: ")]
        assert len(errors) == 1, res.stderr
        assert f"the raft journal {path} is corrupt at byte offset {bad}" in errors[0]
    assert "Traceback" not in node.log_tail(400)
    assert path.read_bytes() == bytes(data)
