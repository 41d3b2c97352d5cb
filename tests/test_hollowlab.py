"""lab.hollowlab and lab.hollownodes: the pure parts (group sizes, names, command lines,
saved identities, which join failures are retried, the start delay from the lab's entry
to the nodes' runtimes), how `swarm-lab up/add --hollow` hand their counts to the lab,
and the hollow process's own options (--debug, bad values) on a process that fails its
join at once (a malformed token: no manager needed)."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab import hollowlab
from lab import main as labmain
from lab.cluster import LabError
from lab.hollownodes import (LABEL_HOLLOW, HollowNode, _parser, _retryable, host_from_args,
                             hostname_of, node_dir)
from pki import node as pkinode
from worker.hollow import HollowRuntime
from worker.runtime import ContainerConfig

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("total,per,expected", [
    (1000, 250, [250, 250, 250, 250]),
    (600, 250, [200, 200, 200]),
    (50, 250, [50]),
    (7, 3, [3, 2, 2]),
    (0, 250, []),
])
def test_groups_are_as_even_as_possible(total: int, per: int, expected: list[int]) -> None:
    assert hollowlab.split(total, per) == expected
    assert sum(hollowlab.split(total, per)) == total


def test_bad_counts_are_refused() -> None:
    with pytest.raises(ValueError):
        hollowlab.split(-1, 10)
    with pytest.raises(ValueError):
        hollowlab.split(10, 0)


def test_hostnames_and_command_line() -> None:
    entry = {"data_dir": "/lab/nodes/hollow2", "hollow": 3, "first_index": 1,
             "start_delay": 0.2}
    assert hollowlab.hostnames("hollow2", entry) == ["hollow2-1", "hollow2-2", "hollow2-3"]
    assert hostname_of("hollow2", 3) == "hollow2-3"
    argv = hollowlab.command("/py", "hollow2", entry, ["10.0.0.1:2377", "10.0.0.2:2377"],
                             "SWMTKN-1-x", "10.0.0.9")
    args = _parser().parse_args(argv[3:])       # what the hollow process will read
    assert argv[:3] == ["/py", "-m", "lab.hollownodes"]
    assert (args.group, args.count, args.first_index, args.start_delay) == ("hollow2", 3, 1, 0.2)
    assert args.manager == "10.0.0.1:2377,10.0.0.2:2377" and args.advertise_ip == "10.0.0.9"
    assert str(args.data_dir) == "/lab/nodes/hollow2"
    assert LABEL_HOLLOW == "com.shoal.lab.hollow"


def test_a_node_identity_is_kept_for_a_restart(tmp_path: Path) -> None:
    node = HollowNode(4, "hollow1-4", node_dir(tmp_path, 4))
    node.directory.mkdir(parents=True)
    assert not node.load()                      # never joined
    node.node_id, node.cluster_id, node.managers = "n4", "c1", ["10.0.0.1:2377"]
    node.save()
    again = HollowNode(4, "hollow1-4", node_dir(tmp_path, 4))
    assert not again.load()                     # no credentials yet: it must join again
    certs = pkinode.cert_dir(node.directory)
    certs.mkdir(parents=True)
    for name in (pkinode.KEY_FILE, pkinode.CERT_FILE, pkinode.ROOT_CA_FILE):
        (certs / name).write_bytes(b"pem")
    assert again.load()
    assert (again.node_id, again.cluster_id, again.managers) == ("n4", "c1", ["10.0.0.1:2377"])

@pytest.mark.parametrize("message,retry", [
    ("cannot reach the manager at 10.0.0.1:2377: failed to connect", True),
    ("Deadline Exceeded", True),
    ("the write was not committed within 5s (leader 10.0.0.1:2378)", True),
    ("invalid join token", False),
    ("the join token was rotated: ask for the current one", False),
])
def test_which_join_failures_are_retried(message: str, retry: bool) -> None:
    assert _retryable(message) is retry


class _RecordingLab:
    """Stands in for lab.cluster.Lab in `swarm-lab`'s argument handling."""
    calls: list[tuple] = []

    def up(self, *args: object) -> list:
        self.calls.append(("up", *args))
        return []

    def add_hollow(self, count: int) -> str:
        if count < 1:
            raise LabError("a hollow group needs at least one node")
        self.calls.append(("add_hollow", count))
        return "hollow3"

    def ip(self, name: str) -> str:
        return "10.0.0.9"

    def add(self, name: str, manager: bool = False, token: object = None) -> object:
        raise AssertionError("a plain add was not asked for")


def test_swarm_lab_up_and_add_pass_the_hollow_counts_on(monkeypatch, capsys) -> None:
    monkeypatch.setattr(labmain, "Lab", _RecordingLab)
    _RecordingLab.calls = []
    assert labmain.main(["up", "--managers", "3", "--hollow", "1000",
                         "--hollow-per-process", "200"]) == 0
    assert labmain.main(["add", "--hollow", "40"]) == 0
    assert _RecordingLab.calls == [("up", 3, 0, 1000, 200), ("add_hollow", 40)]
    assert "hollow3\thollow\t10.0.0.9\t40 nodes" in capsys.readouterr().out
    assert labmain.main(["add", "--hollow", "5", "worker9"]) == 2      # no NAME with it
    assert labmain.main(["add"]) == 2                                   # NAME or --hollow
    assert labmain.main(["add", "--hollow", "0"]) == 2                  # refused as a count
    assert "needs N of at least 1, not 0" in capsys.readouterr().err
def test_the_start_delay_goes_from_the_labs_entry_to_every_nodes_runtime(tmp_path: Path
                                                                         ) -> None:
    entry = {"data_dir": str(tmp_path), "hollow": 2, "first_index": 1, "start_delay": 0.3}
    argv = hollowlab.command("/py", "hollow1", entry, ["10.0.0.1:2377"], "SWMTKN-1-x",
                             "10.0.0.9")
    host = host_from_args(_parser().parse_args(argv[3:]))
    try:
        assert [n.hostname for n in host.nodes] == ["hollow1-1", "hollow1-2"]
        runtime = host.make_runtime("n1")
        assert isinstance(runtime, HollowRuntime)
        assert runtime.engine.start_delay == 0.3

        async def start_time() -> float:
            await runtime.ensure_image("busybox")
            cid = await runtime.create(ContainerConfig(name="t1", image="busybox"))
            began = time.monotonic()
            await runtime.start(cid)
            assert (await runtime.inspect(cid)).running
            return time.monotonic() - began
        assert asyncio.run(start_time()) >= 0.3
        host.make_runtime("n2")
        assert {n: e.start_delay for n, e in host.engines.items()} == {"n1": 0.3, "n2": 0.3}
    finally:
        host.executor.shutdown()
    # without the entry's value, the runtime's default
    del entry["start_delay"]
    args = _parser().parse_args(hollowlab.command("/py", "hollow1", entry, ["10.0.0.1:2377"],
                                                  "SWMTKN-1-x", "10.0.0.9")[3:])
    assert args.start_delay == hollowlab.DEFAULT_START_DELAY


def hollownodes(tmp_path: Path, *options: str) -> subprocess.CompletedProcess:
    """Runs a one-node group whose join is refused at once (its token is malformed)."""
    return subprocess.run(
        [sys.executable, "-m", "lab.hollownodes", "--data-dir", str(tmp_path / "g"),
         "--group", "g", "--count", "1", "--manager", "127.0.0.1:2377",
         "--token", "not-a-token", "--advertise-ip", "127.0.0.1", *options],
        capture_output=True, text=True, timeout=60, cwd=str(REPO),
        env=dict(os.environ, PYTHONPATH=str(REPO)))


def test_debug_logs_at_debug_level(tmp_path: Path) -> None:
    refused = "Error: g-1: invalid join token: it does not start with SWMTKN-"
    quiet = hollownodes(tmp_path)
    assert quiet.returncode == 1 and refused in quiet.stderr
    assert " DEBUG " not in quiet.stderr
    debug = hollownodes(tmp_path, "--debug")
    assert debug.returncode == 1 and refused in debug.stderr
    joining = [line for line in debug.stderr.splitlines()
               if "g-1: joining through 127.0.0.1:2377 (attempt 1)" in line]
    assert len(joining) == 1 and " DEBUG " in joining[0]


@pytest.mark.parametrize("option", [["--count", "0"], ["--start-delay", "-1"]])
def test_bad_counts_and_delays_are_refused(tmp_path: Path, option: list[str]) -> None:
    res = hollownodes(tmp_path, *option)
    assert res.returncode == 2
    assert "Error: --count must be at least 1 and --start-delay at least 0" in res.stderr
    assert not (tmp_path / "g").exists()        # refused before anything was made


def test_new_groups_take_the_lowest_free_names() -> None:
    assert hollowlab.group_names({"manager1", "hollow1", "hollow3"}, 3) == \
        ["hollow2", "hollow4", "hollow5"]
    assert hollowlab.group_names(set(), 0) == []
    assert hollowlab.entry(Path("/d/hollow2"), 7, 0.05, "SWMTKN-1-x") == {
        "role": "hollow", "data_dir": "/d/hollow2", "hollow": 7, "first_index": 1,
        "start_delay": 0.05, "token": "SWMTKN-1-x"}


def test_generic_resources_go_from_the_labs_entry_to_every_nodes_agent(tmp_path: Path
                                                                       ) -> None:
    entry = hollowlab.entry(tmp_path, 2, 0.05, "SWMTKN-1-x", ["gpu=G1", "gpu=G2"])
    assert entry["generic_resources"] == ["gpu=G1", "gpu=G2"]
    argv = hollowlab.command("/py", "hollow1", entry, ["10.0.0.1:2377"], "SWMTKN-1-x",
                             "10.0.0.9")
    assert argv[-4:] == ["--node-generic-resource", "gpu=G1", "--node-generic-resource",
                         "gpu=G2"]
    host = host_from_args(_parser().parse_args(argv[3:]))
    try:
        assert [(r.named_resource_spec.kind, r.named_resource_spec.value)
                for r in host.generic_resources] == [("gpu", "G1"), ("gpu", "G2")]
    finally:
        host.executor.shutdown()
    plain = hollowlab.entry(tmp_path, 2, 0.05, "SWMTKN-1-x")
    assert "generic_resources" not in plain
    assert "--node-generic-resource" not in hollowlab.command(
        "/py", "hollow1", plain, ["10.0.0.1:2377"], "SWMTKN-1-x", "10.0.0.9")


def test_a_bad_generic_resource_is_refused(tmp_path: Path) -> None:
    res = hollownodes(tmp_path, "--node-generic-resource", "gpu")
    assert res.returncode == 2
    assert "expected KIND=VALUE" in res.stderr
