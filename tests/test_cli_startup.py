"""The `swarm` client path loads no server code and only the command it runs.

`swarm node ls` has to start fast (people run it in loops), so cli.main
imports a command's module only when that command runs, and client commands
import nothing of the node, manager, worker, store or PKI. Each check runs a
fresh interpreter (this test process has imported everything), runs a command
through `cli.main.main` up to and including its first call to the node (a
socket that does not exist, so the call fails at once) and reads the names of
the modules it loaded.
"""
from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli.main import COMMANDS, build_parser

REPO = Path(__file__).resolve().parent.parent
NOWHERE = ["-H", "unix:///nonexistent/dir/swarm.sock"]

# Packages no client command may load: the node daemon and what it wires
# together (store, raft library, manager, agent, networking, scheduler), the
# PKI and the cryptography library under it.
SERVER_CODE = ("node", "raft", "pysyncobj", "manager", "worker", "overlay_net", "scheduler",
               "pki", "cryptography", "cli.node_commands", "cli.commands_daemon")
COMMAND_MODULES = sorted({command.module for command in COMMANDS})

_PROBE = """
import json, sys
from cli.main import main
try:
    code = main(json.loads(sys.argv[1]))
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def run_fresh(argv: list[str]) -> tuple[int, set[str], str]:
    """Runs `swarm ARGV` via cli.main.main in a new interpreter: exit code, modules, stderr."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    res = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(argv)], capture_output=True,
                         text=True, env=env, cwd=str(REPO), timeout=60)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout.strip().splitlines()[-1])
    return report["code"], set(report["modules"]), res.stderr


def within(modules: set[str], packages: tuple[str, ...] | list[str]) -> list[str]:
    return sorted(m for m in modules for p in packages if m == p or m.startswith(p + "."))


@pytest.mark.parametrize("argv", [
    ["node", "ls"], ["node", "inspect", "self"], ["node", "ps"],
    ["service", "ls"], ["service", "inspect", "web"], ["service", "ps", "web"],
    ["network", "ls"], ["secret", "ls"], ["config", "ls"], ["volume", "ls"], ["info"],
    ["stack", "ls"], ["stack", "services", "app"], ["stack", "ps", "app"],
    ["stack", "rm", "app"],
])
def test_client_commands_load_no_server_code(argv: list[str]) -> None:
    code, modules, err = run_fresh([*NOWHERE, *argv])
    assert code == 1 and "Cannot connect to the swarm node" in err, err
    assert "cli.client" in modules and "cli.fastcall" in modules   # it did reach the call
    assert within(modules, SERVER_CODE) == []


@pytest.mark.parametrize("argv", [["node", "ls"], ["service", "ls"], ["stack", "ls"]])
def test_list_commands_load_no_grpc(argv: list[str]) -> None:
    """Their reads go through cli.fastcall: grpc's import alone would take half their time."""
    code, modules, err = run_fresh([*NOWHERE, *argv])
    assert code == 1 and "Cannot connect to the swarm node" in err, err
    assert within(modules, ["grpc", "cli.grpc_transport", "proto.control_pb2_grpc"]) == []


# Standard modules the list commands do without: each costs milliseconds of start-up
# (dataclasses imports inspect, ast, dis, tokenize: 6 ms here; socket 3 ms; traceback 1.5 ms).
SLOW_STDLIB = ("dataclasses", "inspect", "socket", "traceback")


@pytest.mark.parametrize("argv", [["node", "ls"], ["service", "ls"]])
def test_list_commands_load_no_slow_standard_module(argv: list[str]) -> None:
    _, modules, _ = run_fresh([*NOWHERE, *argv])
    assert within(modules, SLOW_STDLIB) == []


def test_stack_deploy_loads_no_server_code(tmp_path: Path) -> None:
    (tmp_path / "s.yml").write_text("services:\n  web: {image: 'nginx:1'}\n")
    code, modules, err = run_fresh([*NOWHERE, "stack", "deploy", "-d", "-c",
                                    str(tmp_path / "s.yml"), "app"])
    assert code == 1 and "Cannot connect to the swarm node" in err, err
    assert "cli.compose.convert" in modules
    assert within(modules, SERVER_CODE) == []


@pytest.mark.parametrize("argv", [["node", "ls"], ["service", "ls"]])
def test_list_commands_load_no_compose_code(argv: list[str]) -> None:
    _, modules, _ = run_fresh([*NOWHERE, *argv])
    assert within(modules, ["cli.compose", "cli.commands_stack", "yaml"]) == []


def test_a_write_loads_grpc() -> None:
    """Writes are made by grpcio (loaded when the call is made)."""
    code, modules, err = run_fresh([*NOWHERE, "network", "create", "backend"])
    assert code == 1 and "Cannot connect to the swarm node" in err, err
    assert "grpc" in modules and "cli.grpc_transport" in modules
    assert within(modules, SERVER_CODE) == []


def test_node_ls_imports_only_its_own_command() -> None:
    _, modules, _ = run_fresh([*NOWHERE, "node", "ls"])
    others = [m for m in COMMAND_MODULES if m != "cli.commands_node"]
    assert within(modules, others) == []


def test_help_imports_no_command() -> None:
    code, modules, _ = run_fresh(["--help"])
    assert code == 0
    assert within(modules, COMMAND_MODULES) == []
    assert within(modules, SERVER_CODE) == []


def test_every_command_of_the_table_is_declared_and_runs_somewhere(capsys) -> None:
    for command in COMMANDS:
        module = importlib.import_module(command.module)
        assert callable(getattr(module, command.declarer)), command
        if command.runner:
            runner = importlib.import_module(command.runner)
            assert callable(getattr(runner, f"cmd_{command.name}")), command
        # its help: the arguments are declared on demand, the usage names the command
        with pytest.raises(SystemExit) as exc:
            build_parser().parse_args([command.name, "--help"])
        assert exc.value.code == 0
        assert capsys.readouterr().out.startswith(f"usage: swarm {command.name} "), command
