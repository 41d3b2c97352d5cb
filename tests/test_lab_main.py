"""The `swarm-lab` command line (lab.main) over a stand-in `Lab`: which options reach
which lab call, and what `add --hollow` refuses before touching the lab. The same
commands against a real lab are in tests/test_e2e_hollow.py."""
from __future__ import annotations

from typing import Any, Optional

import pytest

from lab import main as labmain
from lab.cluster import NodeInfo
from lab.hollowlab import PER_PROCESS


class FakeLab:
    """Records the calls `lab.main` makes; answers like a lab with the nodes asked for."""
    calls: list[tuple[Any, ...]] = []

    def __init__(self, node_flags: Optional[dict[str, list[str]]] = None) -> None:
        if node_flags is not None:
            self.calls.append(("node_flags", node_flags))

    def up(self, managers: int, workers: int, hollow: int, per_process: int) -> list[NodeInfo]:
        self.calls.append(("up", managers, workers, hollow, per_process))
        return [NodeInfo("manager1", "manager", "10.99.0.2", "/d/manager1", 10, "", "br"),
                NodeInfo("hollow1", "hollow", "10.99.0.3", "/d/hollow1", 11, "", "br", 4)]

    def add_hollow(self, count: int, generic_resources: Optional[list[str]] = None) -> str:
        self.calls.append(("add_hollow", count) + ((generic_resources,) if generic_resources
                                                   else ()))
        return "hollow2"

    def ip(self, name: str) -> str:
        return "10.99.0.4"

    def add(self, name: str, manager: bool = False, token: Optional[str] = None,
            flags: Optional[list[str]] = None) -> NodeInfo:
        self.calls.append(("add", name, manager, token) + ((flags,) if flags else ()))
        return NodeInfo(name, "manager" if manager else "worker", "10.99.0.5", "/d", 12, "",
                        "br")


@pytest.fixture(autouse=True)
def fake_lab(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    FakeLab.calls = []
    monkeypatch.setattr(labmain, "Lab", FakeLab)
    return FakeLab.calls


def test_up_passes_the_hollow_count_and_group_size(fake_lab: list, capsys: Any) -> None:
    assert labmain.main(["up", "--managers", "1", "--workers", "0", "--hollow", "7",
                         "--hollow-per-process", "3"]) == 0
    assert fake_lab == [("up", 1, 0, 7, 3)]
    assert capsys.readouterr().out.splitlines() == ["manager1\tmanager\t10.99.0.2",
                                                    "hollow1\thollow\t10.99.0.3"]
    assert labmain.main(["up", "--hollow", "7"]) == 0
    assert fake_lab[-1] == ("up", 1, 0, 7, PER_PROCESS)


def test_add_hollow_starts_a_group(fake_lab: list, capsys: Any) -> None:
    assert labmain.main(["add", "--hollow", "6"]) == 0
    assert fake_lab == [("add_hollow", 6)]
    assert capsys.readouterr().out == "hollow2\thollow\t10.99.0.4\t6 nodes\n"


@pytest.mark.parametrize("extra", [["extra1"], ["--manager"], ["--token", "SWMTKN-1-x"]])
def test_add_hollow_refuses_a_name_a_manager_or_a_token(fake_lab: list, capsys: Any,
                                                        extra: list[str]) -> None:
    assert labmain.main(["add", "--hollow", "3", *extra]) == 2
    out = capsys.readouterr()
    assert out.err == ("Error: add --hollow N takes no NAME, --manager or --token (hollow "
                       "nodes are workers; the group is named hollowK)\n")
    assert out.out == "" and fake_lab == []


@pytest.mark.parametrize("count", ["0", "-2"])
def test_add_hollow_refuses_no_nodes(fake_lab: list, capsys: Any, count: str) -> None:
    # `--hollow 0 NAME` used to add an ordinary worker NAME as if --hollow were not given
    assert labmain.main(["add", f"--hollow={count}", "extra1"]) == 2
    assert labmain.main(["add", f"--hollow={count}"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == \
        f"Error: add --hollow N needs N of at least 1, not {count}"
    assert fake_lab == []


def test_add_without_hollow_joins_a_node(fake_lab: list, capsys: Any) -> None:
    assert labmain.main(["add", "worker9", "--manager"]) == 0
    assert fake_lab == [("add", "worker9", True, None)]
    assert labmain.main(["add"]) == 2
    assert capsys.readouterr().err == "Error: add needs a NAME (or --hollow N)\n"


def test_generic_resources_become_node_flags(fake_lab: list, capsys: Any) -> None:
    assert labmain.main(["up", "--workers", "1", "--generic-resource", "worker1:gpu=GPU-1",
                         "--generic-resource", "worker1:gpu=GPU-2"]) == 0
    assert fake_lab[0] == ("node_flags", {"worker1": [
        "--node-generic-resource", "gpu=GPU-1", "--node-generic-resource", "gpu=GPU-2"]})
    assert labmain.main(["add", "w9", "--generic-resource", "ssd=2"]) == 0
    assert fake_lab[-1] == ("add", "w9", False, None, ["--node-generic-resource", "ssd=2"])
    assert labmain.main(["add", "--hollow", "3", "--generic-resource", "gpu=G1"]) == 0
    assert fake_lab[-1] == ("add_hollow", 3, ["gpu=G1"])


def test_generic_resource_without_a_node_is_refused(fake_lab: list, capsys: Any) -> None:
    assert labmain.main(["up", "--generic-resource", "gpu=GPU-1"]) != 0
    assert "expected NODE:KIND=VALUE" in capsys.readouterr().err
    assert labmain.main(["up", "--generic-resource", "worker1:gpu=GPU-1"]) != 0  # no worker1
    assert "which `up` does not make" in capsys.readouterr().err
