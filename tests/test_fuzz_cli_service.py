"""`swarm service create|update`: any command line builds a valid spec or is a usage error.

Command lines are generated from the real parser's flags (cli/flags.py) with
random values (edge cases, numbers beyond every field's range, unicode,
undecodable bytes, '=' and ',' inside, repeated flags, flags without their
value, stray tokens). Each goes through what `swarm` runs before calling the
manager: argparse as `cli.main.main` drives it, then `cli.specs.create_spec`
or `update_spec`. The outcome must be one of:

* argparse's usage error: exit code 2 and a message on stderr;
* `UsageError` (the CLI prints it on one line, exit 1) with a message;
* a spec that serializes, round-trips, and that the manager's validation
  (manager/validation.py, after its defaults) accepts or refuses with
  `InvalidSpec` and a message. The CLI checks the grammar of what it parses and
  leaves some rules to the manager by design (image references, capability and
  sysctl names, env keys, label names in constraints, service names): those
  reach the user as the manager's one-line refusal.

Any other exception is a traceback a person would see. Examples: 400 for
create, 400 for update (derandomized). Besides, every flag of both commands is
tried once with values it accepts: one of them must change the spec built (no
flag is accepted and then ignored).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from cli import specs
from cli.parsing import UsageError
from cli.unsupported import RefuseFlag
from manager.validation import InvalidSpec, check_service_spec, normalise_service_spec
from proto import objects_pb2 as pb
from tests.fuzz_helpers import (ARGV_TEXT, argv_for, fuzz_settings, hinted_value_list,
                                option_strings, parse_or_usage, subparser)

CREATE = subparser("service", "create")
UPDATE = subparser("service", "update")
IMAGES = st.sampled_from(["busybox", "busybox:1.36", "registry:5000/app@sha256:" + "a" * 64,
                          "", " ", "a b", "ü"]) | ARGV_TEXT
COMMANDS = st.lists(st.sampled_from(["sleep", "1000", "--", "-c", "echo $A"]) | ARGV_TEXT,
                    max_size=3)


def base_spec() -> pb.ServiceSpec:
    """A service as the manager keeps it, for `update` to change."""
    ns = parse_or_usage(["service", "create", "--name", "web", "--replicas", "2", "-e", "A=1",
                         "-l", "k=v", "--constraint", "node.role==worker", "-p", "8080:80",
                         "--secret", "s", "--network", "n", "--mount",
                         "type=tmpfs,target=/t", "--ulimit", "nofile=10:20",
                         "--host", "db:10.0.0.1", "busybox", "sleep", "1000"])
    assert ns is not None
    return specs.create_spec(ns)


BASE = base_spec()


def check_accepted(spec: pb.ServiceSpec) -> None:
    """A spec the CLI built: it serializes and the manager's validation accepts it."""
    wire = spec.SerializeToString()
    assert pb.ServiceSpec.FromString(wire) == spec
    normalise_service_spec(spec)
    try:
        check_service_spec(spec)
    except InvalidSpec as exc:
        assert str(exc)


@fuzz_settings(400)
@given(argv_for(CREATE, []), IMAGES, COMMANDS)
def test_service_create_argv(options: list[str], image: str, command: list[str]) -> None:
    ns = parse_or_usage(["service", "create", *options, image, *command])
    if ns is None:
        return
    try:
        spec = specs.create_spec(ns)
    except UsageError as exc:
        assert str(exc)
        return
    check_accepted(spec)


@fuzz_settings(400)
@given(argv_for(UPDATE, []))
def test_service_update_argv(options: list[str]) -> None:
    ns = parse_or_usage(["service", "update", *options, "web"])
    if ns is None:
        return
    try:
        spec = specs.update_spec(BASE, ns)
    except UsageError as exc:
        assert str(exc)
        return
    check_accepted(spec)


# Flags that change what the command does, not the spec it sends.
NOT_IN_SPEC = {"--detach", "-d", "--detach-value", "--quiet", "-q", "--quiet-value",
               "--rollback", "--rollback-value",   # update --rollback sends the previous spec
               # resolving the image to a digest is the command's (tests/test_imagepin.py)
               "--no-resolve-image", "--no-resolve-image-value"}
# set by the command from the Docker config file, after cli.specs built the spec
# (cli/registryauth.py; tests/test_registry_auth_units.py shows it changes the spec)
NOT_IN_SPEC |= {"--with-registry-auth", "--with-registry-auth-value"}
# Values that differ from Docker's defaults where the generic ones would not.
NON_DEFAULT = {"--update-failure-action": "continue", "--update-order": "start-first",
               "--rollback-failure-action": "continue", "--rollback-order": "start-first",
               "--restart-condition": "none", "--mode": "global", "--update-monitor": "7s",
               "--rollback-monitor": "7s", "--update-parallelism": "3",
               "--rollback-parallelism": "3", "--replicas": "4", "--log-opt": "max-size=1m",
               "--log-driver": "local", "--health-retries": "3", "--endpoint-mode": "dnsrr",
               "--no-healthcheck-value": "true", "--tty-value": "true", "--init-value": "true",
               "--read-only-value": "true", "--force-value": "true", "--cap-add": "NET_ADMIN",
               "--cap-drop": "CHOWN", "--max-concurrent": "2", "--oom-score-adj": "-500",
               "--env-file": str(Path(__file__).parent / "fixtures" / "service.env")}


def long_name(parser: argparse.ArgumentParser, flag: str) -> str:
    """The long form of `flag` (-e: --env), whose name says what values it takes."""
    action = next(a for a in parser._actions if flag in a.option_strings)
    return max(action.option_strings, key=len)


def changes_of(parser_name: str, flag: str, takes_value: bool) -> list[str]:
    """The values of `flag` that build a spec, each paired with whether it changed it."""
    command = ["service", parser_name]
    tail = ["busybox"] if parser_name == "create" else ["web"]
    extra = ["--mode", "replicated-job"] if flag == "--max-concurrent" else []
    if flag == "--max-concurrent" and parser_name == "update":
        return ["skipped"]        # needs a job service: covered by the unit tests
    plain_ns = parse_or_usage([*command, *extra, *tail])
    assert plain_ns is not None
    build = (specs.create_spec if parser_name == "create"
             else lambda ns: specs.update_spec(BASE, ns))
    plain = build(plain_ns)
    name = long_name(CREATE if parser_name == "create" else UPDATE, flag)
    candidates = ([NON_DEFAULT[name]] if name in NON_DEFAULT
                  else hinted_value_list(name) or ["x1", "SIGINT", "A=1", "busybox:2"])
    changed = []
    for value in candidates if takes_value else [None]:
        argv = [*command, *extra, flag, *([value] if value is not None else []), *tail]
        ns = parse_or_usage(argv)
        if ns is None:
            continue
        try:
            spec = build(ns)
        except UsageError:
            continue
        changed.append(str(spec != plain))
        if spec != plain:
            break
    return changed


def refused_flags(parser: argparse.ArgumentParser) -> set[str]:
    """Docker's flags this parser only declares to refuse them with a reason
    (cli.unsupported; tests/test_cli_parity.py checks each refusal)."""
    return {flag for action in parser._actions if isinstance(action, RefuseFlag)
            for flag in action.option_strings}


def test_every_accepted_flag_changes_the_spec() -> None:
    """No flag of create or update is accepted and then ignored: for each one, a value
    it accepts changes the spec built (not fuzzing: every flag, once per value)."""
    ignored = []
    for parser_name, parser in (("create", CREATE), ("update", UPDATE)):
        refused = refused_flags(parser)
        assert refused, "the refused Docker flags should be declared on the parser"
        for flag, takes_value in option_strings(parser):
            if flag in NOT_IN_SPEC or flag in refused or \
                    (parser_name == "update" and flag.endswith("-rm")):
                continue
            outcomes = changes_of(parser_name, flag, takes_value)
            if outcomes != ["skipped"] and "True" not in outcomes:
                ignored.append(f"service {parser_name} {flag}: {outcomes}")
    assert not ignored, "\n".join(ignored)
