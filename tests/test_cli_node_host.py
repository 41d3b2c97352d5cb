"""Node commands find their node as client commands do (issue 18).

`swarm -H unix:///srv/n1/swarm.sock leave` used to look in /var/lib/shoal and
say "This node is not part of a swarm". A node's control socket is
`<data-dir>/swarm.sock`, so `init`, `join`, `daemon` and `leave` without
--data-dir work on the node whose socket -H/--host or $SWARM_HOST names (as
`docker -H unix:///other.sock swarm leave` leaves the daemon at that socket).
They work on the node's files: a TCP host, a socket not named swarm.sock, or
-H and --data-dir naming two nodes are refused with what to do instead.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from cli import node_commands
from cli.main import main, parse_command_line
from cli.parsing import UsageError
from node import bootstrap
from node.bootstrap import LEAVE_MANAGER
from node.config import NodeConfig
from node.state import NodeState


def _dir(argv: list[str], environ: dict[str, str]) -> Path:
    return node_commands.node_data_dir(parse_command_line(argv), environ)


@pytest.mark.parametrize("argv,environ,expected", [
    (["leave"], {}, "/var/lib/shoal"),
    (["-H", "unix:///srv/n1/swarm.sock", "leave"], {}, "/srv/n1"),
    (["--host", "unix:///srv/n1/swarm.sock", "daemon"], {}, "/srv/n1"),
    (["-H", "/srv/n1/swarm.sock", "init"], {}, "/srv/n1"),
    (["leave"], {"SWARM_HOST": "unix:///srv/n2/swarm.sock"}, "/srv/n2"),
    (["-H", "unix:///srv/n1/swarm.sock", "join", "--token", "t", "10.0.0.1:2377"],
     {"SWARM_HOST": "unix:///srv/n2/swarm.sock"}, "/srv/n1"),               # -H wins
    (["leave", "--data-dir", "/srv/n3"], {"SWARM_HOST": "unix:///srv/n2/swarm.sock"},
     "/srv/n3"),                                                            # so does the flag
    (["leave", "--data-dir", "/srv/n3"], {"SWARM_HOST": "tcp://10.0.0.1:2377"}, "/srv/n3"),
    (["-H", "unix:///srv/n3/swarm.sock", "leave", "--data-dir", "/srv/n3/"], {}, "/srv/n3"),
])
def test_the_node_is_the_one_the_host_names(argv: list[str], environ: dict[str, str],
                                            expected: str) -> None:
    assert _dir(argv, environ) == Path(expected)


def test_a_relative_data_dir_is_made_absolute(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The detached daemon runs in /: it gets the absolute path."""
    monkeypatch.chdir(tmp_path)
    config = node_commands.node_config(parse_command_line(["init", "--data-dir", "n1"]), {})
    assert config.data_dir == tmp_path / "n1"
    assert config.daemon_command[-1] == str(tmp_path / "n1")


@pytest.mark.parametrize("argv,environ,message", [
    (["-H", "tcp://10.0.0.1:2377", "leave"], {},
     "swarm leave works on a node of this machine, through its data directory; -H "
     "tcp://10.0.0.1:2377 is a node reached over the network: run the command on that node's "
     "machine, or give --data-dir DIR for a node here"),
    (["init"], {"SWARM_HOST": "10.0.0.1:2377"},
     "swarm init works on a node of this machine, through its data directory; "
     "$SWARM_HOST=10.0.0.1:2377 is a node reached over the network"),
    (["-H", "unix:///srv/n1/other.sock", "daemon"], {},
     "swarm daemon: -H unix:///srv/n1/other.sock is not a node's control socket (a node "
     "listens on <data-dir>/swarm.sock); give --data-dir DIR instead"),
    (["-H", "unix:///srv/n1/swarm.sock", "leave", "--data-dir", "/srv/n2"], {},
     "-H unix:///srv/n1/swarm.sock and --data-dir /srv/n2 name different nodes: the node in "
     "/srv/n2 listens on unix:///srv/n2/swarm.sock; give only one of them"),
    (["-H", "tcp://10.0.0.1:2377", "leave", "--data-dir", "/srv/n2"], {},
     "name different nodes"),
])
def test_a_host_that_is_not_a_local_node_is_refused(argv: list[str], environ: dict[str, str],
                                                    message: str) -> None:
    with pytest.raises(UsageError) as refused:
        _dir(argv, environ)
    assert message in str(refused.value)


def _node(data_dir: Path, role: str) -> None:
    data_dir.mkdir(parents=True)
    NodeState(node_id="n1", role=role, advertise_addr="10.0.0.1:2377",
              listen_addr="10.0.0.1:2377", raft_addr="10.0.0.1:2378").save(data_dir)


def test_leave_through_h_finds_the_node(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                        ) -> None:
    """The manager in tmp_path/n1 is found through -H: leave refuses it without --force
    (Docker's warning), where it used to say the node is not part of a swarm."""
    _node(tmp_path / "n1", "manager")
    code = main(["-H", f"unix://{tmp_path}/n1/swarm.sock", "leave"])
    assert code == 1
    assert capsys.readouterr().err == f"Error: {LEAVE_MANAGER}\n"


def test_leave_through_swarm_host_leaves_that_node(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    _node(tmp_path / "n1", "worker")
    left: list[Path] = []

    def leave(config: NodeConfig, force: bool, say: object) -> None:   # no podman, no links
        left.append(config.data_dir)
    monkeypatch.setattr(bootstrap, "leave", leave)
    monkeypatch.setenv("SWARM_HOST", f"unix://{tmp_path}/n1/swarm.sock")
    assert main(["leave"]) == 0
    assert left == [tmp_path / "n1"]
    assert capsys.readouterr().out == "Node left the swarm.\n"


def test_leave_through_a_tcp_host_is_refused_before_anything(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    def leave(*args: object) -> None:
        raise AssertionError("leave must not run")
    monkeypatch.setattr(bootstrap, "leave", leave)
    assert main(["-H", "tcp://10.0.0.1:2377", "leave", "--force"]) == 1
    assert capsys.readouterr().err.startswith(
        "Error: swarm leave works on a node of this machine, through its data directory; "
        "-H tcp://10.0.0.1:2377 is a node reached over the network")
