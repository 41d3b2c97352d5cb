"""`swarm --version` and `swarm -v` print one version line and exit 0 (issue 18).

Docker's `docker --version` prints "Docker version X, build Y" without reaching
the daemon; `swarm --version` does the same with Shoal's version and API.
"""
from __future__ import annotations

import pytest

from cli.client import API_VERSION, client_version
from cli.main import main, parse_command_line


@pytest.mark.parametrize("flag", ["--version", "-v"])
def test_version_flag_prints_the_version_and_exits_0(
        flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["-H", "unix:///nonexistent/dir/swarm.sock", flag])
    assert exited.value.code == 0
    out, err = capsys.readouterr()
    assert out == f"Shoal version {client_version()}, API {API_VERSION}\n"
    assert err == ""


def test_version_flag_wins_over_a_command(capsys: pytest.CaptureFixture[str]) -> None:
    """As `docker -v ps`: the version, and the command is not run."""
    with pytest.raises(SystemExit) as exited:
        main(["-v", "node", "ls"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith("Shoal version ")


def test_sub_command_v_flags_are_their_own() -> None:
    """`network inspect -v` stays --verbose: the top-level -v is only read before COMMAND."""
    ns = parse_command_line(["network", "inspect", "-v", "net1"])
    assert ns.verbose is True
