"""Docker CLI parity, machine-checked.

Compares the `swarm` command tree (tests/cliparity.py) with Docker 20.10's own
flags, recorded from its `--help` by scripts/docker_flags.py in
tests/fixtures/docker-20.10-flags.json. Every Docker subcommand of swarm, node,
service, network, secret, config and stack exists in `swarm` (Docker's `docker
swarm init` is `swarm init`), and each of its flags is either implemented with
the same long and short names and value syntax, or listed in
`cli.unsupported`: NOT_SUPPORTED (with the reason, shown in the README) or
TO_BUILD (planned, a list that only shrinks). Using a listed flag ends in a
one-line error naming the reason, never argparse's "unrecognized arguments".
Flags Shoal has beyond Docker's are fine.
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any, Callable

import pytest

from cli import commands_swarm, specs
from cli.main import main, parse_command_line
from cli.parsing import UsageError
from cli.unsupported import NOT_SUPPORTED, REFUSED, TO_BUILD, Refused, refusal_message
from tests.cliparity import CommandInfo, command_tree

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "docker-20.10-flags.json"
DOCKER: dict[str, Any] = json.loads(FIXTURE.read_text())["commands"]
TREE = command_tree()

# Table entries for flags Docker 20.10 does not have (the issue asks for them anyway).
BEYOND_DOCKER_20_10 = {("--oom-score-adj", "service create"), ("--oom-score-adj", "service update")}


def shoal_path(docker_command: str) -> str:
    """"swarm init" -> "init" (Docker's `docker swarm X` is `swarm X`); others unchanged."""
    group, sub = docker_command.split()
    return sub if group == "swarm" else docker_command


def test_fixture_is_docker_20_10() -> None:
    data = json.loads(FIXTURE.read_text())
    assert " 20.10." in data["docker"], data["docker"]
    assert len(DOCKER) >= 40 and DOCKER["service create"]["flags"]


def _command(docker_command: str) -> CommandInfo:
    info = TREE.get(shoal_path(docker_command))
    assert info is not None, (
        f"`docker {docker_command}` has no `swarm {shoal_path(docker_command)}`: build it or "
        "list it in cli/unsupported.py (NOT_SUPPORTED with the reason, or TO_BUILD)")
    return info


@pytest.mark.parametrize("docker_command", sorted(DOCKER))
def test_command_exists_with_docker_aliases(docker_command: str) -> None:
    info = _command(docker_command)
    if info.refused is not None:
        return
    missing = [a for a in DOCKER[docker_command]["aliases"] if a not in info.aliases]
    assert not missing, f"`swarm {info.path}` lacks Docker's aliases {missing}"


@pytest.mark.parametrize("docker_command", sorted(DOCKER))
def test_every_docker_flag_is_implemented_or_listed(docker_command: str) -> None:
    info = _command(docker_command)
    if info.refused is not None:
        return
    problems = []
    for flag in DOCKER[docker_command]["flags"]:
        long = "--" + flag["long"]
        short = "-" + flag["short"] if flag["short"] else None
        takes_value = flag["type"] is not None
        mine = info.flag(long)
        if mine is None:
            problems.append(f"{long} ({flag['type'] or 'boolean'}): not implemented and not in "
                            "cli/unsupported.py (NOT_SUPPORTED with the reason, or TO_BUILD)")
            continue
        if mine.short != short:
            problems.append(f"{long}: short name {mine.short} where Docker has {short}")
        if mine.takes_value != takes_value:
            problems.append(f"{long}: {'takes a value' if mine.takes_value else 'is a boolean'}"
                            f" where Docker's is {flag['type'] or 'a boolean'}")
    assert not problems, f"swarm {info.path}:\n  " + "\n  ".join(problems)


def _uses() -> list[tuple[Refused, str]]:
    return [(entry, command) for entry in REFUSED for command in entry.commands]


def _id(use: tuple[Refused, str]) -> str:
    entry, command = use
    return f"{command} {entry.flag}".strip()


@pytest.mark.parametrize("use", _uses(), ids=_id)
def test_listed_entry_is_declared_as_a_refusal(use: tuple[Refused, str]) -> None:
    """Each table entry names a Docker flag of an existing command and is still refused:
    once implemented, it must leave the table (TO_BUILD only shrinks)."""
    entry, command = use
    table = "TO_BUILD" if entry.to_build else "NOT_SUPPORTED"
    info = TREE.get(command)
    assert info is not None, f"{table} names `swarm {command}`, which does not exist"
    if not entry.flag:
        assert info.refused is entry, f"`swarm {command}` is implemented: remove it from {table}"
        return
    mine = info.flag(entry.flag)
    assert mine is not None, f"{entry.flag} of {table} is not declared on `swarm {command}`"
    assert mine.refused is not None, (
        f"{entry.flag} is implemented on `swarm {command}`: remove it from {table} in "
        "cli/unsupported.py")
    docker = {f["long"]: f for f in DOCKER.get(_docker_name(command), {}).get("flags", [])}
    if (entry.flag, command) not in BEYOND_DOCKER_20_10:
        assert entry.flag[2:] in docker, f"{entry.flag} is not a flag of docker's {command}"
        assert (entry.short or None) == ("-" + docker[entry.flag[2:]]["short"]
                                         if docker[entry.flag[2:]]["short"] else None)
        assert entry.value == (docker[entry.flag[2:]]["type"] is not None)


def _docker_name(command: str) -> str:
    return command if " " in command else f"swarm {command}"


def _sample_argv(entry: Refused, command: str) -> list[str]:
    argv = command.split()
    if entry.flag:
        argv += [entry.flag, "refused-value"] if entry.value else [entry.flag]
    return argv


@pytest.mark.parametrize("use", _uses(), ids=_id)
def test_using_a_listed_flag_names_the_reason(use: tuple[Refused, str]) -> None:
    entry, command = use
    argv = _sample_argv(entry, command)
    with pytest.raises(UsageError) as err:
        parse_command_line(argv)
    assert str(err.value) == refusal_message(entry, command)
    if not entry.to_build:
        assert entry.reason in str(err.value)


@pytest.mark.parametrize("use", _uses(), ids=_id)
def test_the_command_exits_non_zero_with_the_reason(use: tuple[Refused, str],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    entry, command = use
    code = main(_sample_argv(entry, command))
    err = capsys.readouterr().err
    assert code == 1
    assert err.strip() == "Error: " + refusal_message(entry, command)
    assert "unrecognized arguments" not in err


def test_refusal_messages_read_well() -> None:
    isolation = next(e for e in NOT_SUPPORTED if e.flag == "--isolation")
    assert refusal_message(isolation, "service create") == (
        "--isolation on `swarm service create` is not supported by Shoal: Windows only "
        '(process/Hyper-V isolation); on Linux only "default" exists')
    planned = Refused("--env-file", ("service create",), "read KEY=VALUE lines", to_build=True)
    assert refusal_message(planned, "service create") == (
        "--env-file on `swarm service create` is not implemented in Shoal yet")


@pytest.mark.parametrize("argv", [
    ["service", "create", "--isolation", "default", "img"],
    ["service", "create", "--isolation=default", "img"],
    ["stack", "deploy", "--orchestrator", "swarm", "-c", "app.yml", "app"],
    ["stack", "ls", "--orchestrator=swarm"],
    ["network", "create", "--ipam-driver", "default", "net"],
    ["network", "create", "--ipv6=false", "net"],
])
def test_a_value_that_asks_for_what_shoal_does_is_a_no_op(argv: list[str]) -> None:
    ns = parse_command_line(argv)
    flag = next(a for a in argv if a.startswith("--")).split("=")[0]
    assert not hasattr(ns, flag[2:].replace("-", "_"))


def test_a_refused_boolean_given_a_true_value_names_the_reason() -> None:
    with pytest.raises(UsageError, match="--ipv6 on `swarm network create` is not"):
        parse_command_line(["network", "create", "--ipv6=true", "net"])


def test_refused_flags_and_commands_stay_out_of_help(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["service", "create", "--help"], ["network", "--help"]):
        with pytest.raises(SystemExit):
            parse_command_line(argv)
    out = capsys.readouterr().out
    assert "--isolation" not in out and "--credential-spec" not in out
    assert "connect" not in out   # connect and disconnect: refused
    assert "prune" in out         # once refused, now built: listed as any command


def test_the_tables_do_not_overlap() -> None:
    seen: set[tuple[str, str]] = set()
    for entry, command in _uses():
        key = (entry.flag, command)
        assert key not in seen, f"{key} is listed twice"
        seen.add(key)


# ---------------------------------------------------------------- value syntax ----

# A value of each Docker type that Docker's parser takes, and one it refuses.
_GOOD = {"duration": "1m30s", "bytes": "512M", "int": "3", "uint": "3", "decimal": "0.5",
         "float": "0.5"}
_GOOD_FOR = {"--cert-expiry": "2160h"}   # at least the shortest certificate life
_BAD = "1x"
# The flags that only make sense beside another one.
_CONTEXT = {"--max-concurrent": ["--mode", "replicated-job"]}


def _typed_flags(command: str) -> list[tuple[str, str]]:
    typed = []
    for f in DOCKER[command]["flags"]:
        mine = TREE[shoal_path(command)].flag("--" + f["long"])
        if f["type"] in _GOOD and mine is not None and mine.implemented:
            typed.append(("--" + f["long"], f["type"]))
    return typed


def _create(argv: list[str]) -> Any:
    ns = parse_command_line(["service", "create", *_CONTEXT.get(argv[0], []), *argv, "img"])
    return specs.create_spec(ns)


def _update(argv: list[str]) -> Any:
    ns: argparse.Namespace = parse_command_line(["service", "update", *argv, "web"])
    current = _create(["--name", "web"])
    if "--max-concurrent" in argv:
        current = _create(["--mode", "replicated-job", "--name", "web"])
    return specs.update_spec(current, ns)


def _swarm_update(argv: list[str]) -> Any:
    return commands_swarm.parse_changes(parse_command_line(["update", *argv]))


# The commands whose values are read by pure functions (the others on a node or manager).
_BUILDERS: dict[str, Callable[[list[str]], Any]] = {
    "service create": _create, "service update": _update, "swarm update": _swarm_update}


@pytest.mark.parametrize("command,flag,kind", [
    (command, flag, kind) for command in _BUILDERS for flag, kind in _typed_flags(command)])
def test_typed_values_parse_as_docker_reads_them(command: str, flag: str, kind: str) -> None:
    build = _BUILDERS[command]
    build([flag, _GOOD_FOR.get(flag, _GOOD[kind])])
    with pytest.raises(UsageError, match=re.escape(flag[2:])):
        build([flag, _BAD])


def test_the_readme_shows_the_not_supported_table() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("| `")]
    for entry in NOT_SUPPORTED:
        name = f"`{entry.flag}`" if entry.flag else f"`{entry.commands[0]}`"
        assert any(name in row or f"`{entry.short}`/{name}" in row for row in rows), (
            f"README.md's table of what Shoal does not support lacks {name}")
