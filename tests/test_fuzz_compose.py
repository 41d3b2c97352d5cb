"""The Compose loader of `swarm stack deploy`: a stack the manager accepts, or ComposeError.

Fuzzed, each with a fixed number of derandomized examples (tests/fuzz_helpers.py):
- raw text as a compose file (300 random texts, 300 texts glued from YAML's
  edge cases: anchors and aliases, merge keys, tags such as !!python/object,
  tabs, duplicate and non-string keys, huge numbers), plus fixed cases for deep
  nesting and billion-laughs alias expansion, which must be refused quickly;
- structure-aware (1500): valid stack files using every key the loader reads,
  mutated (keys dropped, values replaced by values of other types or by the
  grammar's edge values, unknown keys injected, list items duplicated, a part
  grafted elsewhere, such as one service's ports into another, `version`
  changed), alone or two such files merged (300), then
  converted (cli/compose/convert.py) as `stack deploy` does and checked by the
  manager's own rules for a deploy (manager/controlapi/stacks.deploy_plan, which
  runs CreateService's validation for each service): what the loader accepts
  the manager must accept;
- interpolation (400 templates with random environments, 300 templated values
  in a service): a string, or ComposeError naming the key;
- the compose value parsers (values.py: durations, sizes, CPU counts, integers,
  numbers, booleans; service.py: published ports), 300 each: a value that fits
  the spec field, or ComposeError naming the key.

Every refusal must be a ComposeError whose problems each have a message (and,
from `load`, the file); nothing else may escape. About 4,300 examples, ~35 s on
two cores; SHOAL_FUZZ_SCALE=N runs N times as many, new ones each run.
"""
from __future__ import annotations

import copy
import time
from typing import Any, Callable, Optional

import pytest
import yaml
from hypothesis import event, example, given
from hypothesis import strategies as st

from cli.compose import values as v
from cli.compose.convert import convert
from cli.compose.errors import ComposeError, Warnings
from cli.compose.interpolate import Interpolated, interpolate, substitute
from cli.compose.loader import Loaded, Source, load
from cli.compose.service import read_service
from cli.parsing import INT64_MAX
from manager.controlapi import stacks
from manager.controlapi.common import Refusal
from proto import objects_pb2 as pb
from tests.fuzz_helpers import EDGE_VALUES, VALUES, fuzz_settings

WORKDIR = "/stacks/app"
DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
FILES = {f"{WORKDIR}/s.txt": "secret", f"{WORKDIR}/c.txt": "config",
         f"{WORKDIR}/a.env": "A=1\nB=two\n", f"{WORKDIR}/e.txt": "",
         f"{WORKDIR}/bad.env": "A B=1\n=x\n"}


# ------------------------------------------------------------------ helpers --

def _read_text(path: str) -> str:
    if path not in FILES:
        raise FileNotFoundError(2, "No such file or directory", path)
    return FILES[path]


def _read_bytes(path: str) -> bytes:
    return _read_text(path).encode()


def check_refusal(exc: ComposeError, from_load: bool = True) -> None:
    """A refusal names what was wrong, and (from `load`) in which file, per problem."""
    assert str(exc).strip()
    assert exc.errors
    for problem in exc.errors:
        assert problem.message.strip()
        if from_load:
            assert problem.file
    assert len(str(exc).splitlines()) >= len(exc.errors)


def load_or_refuse(*texts: str, env: Optional[dict[str, str]] = None) -> Optional[Loaded]:
    sources = [Source(name=f"{chr(ord('a') + i)}.yml", text=t) for i, t in enumerate(texts)]
    try:
        return load(sources, dict(env or {}), WORKDIR, _read_text)
    except ComposeError as exc:
        check_refusal(exc)
        return None


def current_with_externals(definition: pb.StackDefinition) -> stacks.Current:
    """The cluster a deploy meets: the external objects the stack names exist."""
    current = stacks.Current()
    for index, name in enumerate(definition.external_networks):
        current.networks.append(pb.Network(id=f"extnet{index}", spec=pb.NetworkSpec(
            annotations=pb.Annotations(name=name), driver="overlay", internal=True)))
    for index, name in enumerate(definition.external_secrets):
        current.secrets.append(pb.Secret(id=f"extsec{index}", spec=pb.SecretSpec(
            annotations=pb.Annotations(name=name), data=b"x")))
    for index, name in enumerate(definition.external_configs):
        current.configs.append(pb.Config(id=f"extcfg{index}", spec=pb.ConfigSpec(
            annotations=pb.Annotations(name=name), data=b"x")))
    return current


def deploy_accepted(*texts: str, env: Optional[dict[str, str]] = None) -> bool:
    """Loads and converts as `stack deploy` does; what converts, the manager must accept.
    True when the files were accepted."""
    loaded = load_or_refuse(*texts, env=env)
    if loaded is None:
        return False
    try:
        definition = convert(loaded.stack, "app", _read_bytes)
    except ComposeError as exc:
        check_refusal(exc, from_load=False)
        return False
    wire = definition.SerializeToString()
    assert pb.StackDefinition.FromString(wire) == definition
    try:
        stacks.deploy_plan(definition, False, current_with_externals(definition))
    except Refusal as refusal:
        pytest.fail(f"the loader accepted what the manager refuses: {refusal.message}\n"
                    f"files: {texts}")
    return True


def dump(document: Any) -> str:
    """The document as YAML (libyaml's dumper when there: the loader under test is the
    pure-Python one)."""
    return yaml.dump(document, Dumper=DUMPER, allow_unicode=True, sort_keys=False)


# ----------------------------------------------------------------- raw text --

YAML_PIECES = [
    "services:", "  web:", "    image: nginx:1", "    image: &img nginx:1", "    image: *img",
    "x: &x {a: 1}", "y: &y [*x, *x]", "    <<: *x", "<<: [*x, *y]", "- *x", "  - a",
    "  k: v", "  k: v", "\tk: v", "key:\tvalue", "? [a, b]\n: c", "? {a: 1}\n: c", "1: one",
    "true: yes", "null: ~", "3.5: f", "n: 0x1F", "n: 0o17", "n: 017", "n: 1_000",
    "n: " + "9" * 400, "n: -" + "9" * 40, "n: 1e400", "n: .inf", "n: .nan", "n: 0b101",
    "a: !!python/object/apply:os.system ['true']", "b: !!python/name:os.system",
    "c: !!python/object:object {}", "d: !!binary aGk=", "e: !!set {a}", "f: !!omap [a: 1]",
    "g: !!timestamp 2001-12-14", "h: !!timestamp nope", "i: !!int x", "j: !!float x",
    "k: !custom tag", "l: !!str 1", "m: !!bool maybe", "o: &r [*r]", "p: *undefined",
    "---", "...", "%YAML 1.1", "%TAG ! tag:x,2000:", "q: 'unterminated", 'r: "\\x"',
    "s: |", "  block", "t: >-", "u: [", "v: {", "version: '3.8'", "version: 2",
    "version: 3.13", "version: '4'", "    deploy: {replicas: 99999999999999999999}",
    "    ports: ['8080:80', 70000]", "\ufeffservices: {}", "\x00", "\x85", "# comment",
    "    command: ${X:?nope}", "    environment: [A=$$, B=$]"]


@fuzz_settings(300)
@given(st.text(max_size=300))
def test_random_text_is_a_stack_or_a_compose_error(text: str) -> None:
    load_or_refuse(text)


@fuzz_settings(300)
@given(st.lists(st.sampled_from(YAML_PIECES) | st.text(max_size=8), max_size=14))
@example(["x: !!python/object/apply:os.system ['echo pwned > /tmp/shoal-fuzz-pwned']"])
@example(["services:", "  web:", "    image: nginx:1", "    image: nginx:2"])
@example(["services:", "  web:", "    image: nginx:1", "  1: {image: a}"])
def test_yaml_edge_cases_are_a_stack_or_a_compose_error(lines: list[str]) -> None:
    load_or_refuse("\n".join(lines) + "\n")


@pytest.mark.parametrize("tag", ["!!python/object/apply:os.system ['true']",
                                 "!!python/object:object {}", "!!python/name:os.system",
                                 "!!python/module:os", "!!python/tuple [1, 2]"])
def test_python_tags_are_refused_not_constructed(tag: str) -> None:
    with pytest.raises(ComposeError) as info:
        load([Source("a.yml", f"services:\n  web:\n    image: {tag}\n")], {}, WORKDIR,
             _read_text)
    assert info.value.file == "a.yml" and "invalid YAML" in info.value.message


def test_billion_laughs_is_refused_quickly() -> None:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, 10):
        previous = chr(ord("a") + level - 1)
        name = chr(ord("a") + level)
        lines.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
    lines.append("services: {web: {image: nginx:1, command: *j}}")
    started = time.monotonic()
    with pytest.raises(ComposeError) as info:
        load([Source("a.yml", "\n".join(lines) + "\n")], {}, WORKDIR, _read_text)
    assert time.monotonic() - started < 10
    assert "aliases are expanded" in info.value.message


@pytest.mark.parametrize("text", ["[" * 5000 + "]" * 5000, "{a: " * 5000 + "1" + "}" * 5000,
                                  "".join(f"{' ' * i}a:\n" for i in range(3000)),
                                  "a: " + "- " * 3000 + "x"])
def test_deep_nesting_is_a_compose_error(text: str) -> None:
    started = time.monotonic()
    with pytest.raises(ComposeError) as info:
        load([Source("a.yml", text)], {}, WORKDIR, _read_text)
    check_refusal(info.value)
    assert time.monotonic() - started < 20


# --------------------------------------------------------- structure-aware --

WEB: dict[str, Any] = {
    "image": "registry:5000/team/web:1.2",
    "command": ["sleep", "1000"],
    "entrypoint": "/bin/sh -c",
    "environment": {"A": "1", "B": None, "C": 2},
    "env_file": ["a.env"],
    "labels": ["tier=front"],
    "hostname": "web-{{.Task.Slot}}",
    "user": "1000:1000",
    "working_dir": "/srv",
    "init": True,
    "read_only": False,
    "tty": False,
    "stop_signal": "SIGTERM",
    "stop_grace_period": "1m30s",
    "dns": ["10.0.0.2"],
    "dns_search": "example.org",
    "dns_opt": ["ndots:2"],
    "group_add": ["audio", 1001],
    "extra_hosts": ["db:10.0.0.5"],
    "cap_add": ["NET_ADMIN"],
    "cap_drop": ["ALL"],
    "sysctls": {"net.core.somaxconn": 1024},
    "ulimits": {"nofile": {"soft": 1024, "hard": 2048}, "nproc": 512},
    "tmpfs": "/run",
    "ports": ["8080:80", {"target": 443, "published": 8443, "protocol": "tcp",
                          "mode": "ingress"}, "9000-9001:9000-9001/udp"],
    "networks": {"front": {"aliases": ["www"]}, "back": None},
    "secrets": ["pw", {"source": "ext", "target": "ext.txt", "uid": "0", "gid": "0",
                       "mode": 0o400}],
    "configs": [{"source": "conf", "target": "/etc/app.conf", "mode": 0o444}],
    "volumes": ["data:/var/lib/data:ro", "./html:/usr/share/html:ro,rshared",
                {"type": "tmpfs", "target": "/cache", "tmpfs": {"size": "64m", "mode": 0o1777}},
                {"type": "volume", "source": "data", "target": "/data2",
                 "volume": {"nocopy": True}},
                {"type": "bind", "source": "/srv/a", "target": "/a", "read_only": True,
                 "bind": {"propagation": "rprivate"}}],
    "healthcheck": {"test": ["CMD", "curl", "-f", "http://localhost"], "interval": "30s",
                    "timeout": "5s", "retries": 3, "start_period": "10s",
                    "start_interval": "1s"},
    "logging": {"driver": "json-file", "options": {"max-size": "10m", "max-file": "1"}},
    "depends_on": ["db"],
    "deploy": {
        "mode": "replicated", "replicas": 3, "labels": {"svc": "web"},
        "endpoint_mode": "vip",
        "update_config": {"parallelism": 2, "delay": "10s", "failure_action": "rollback",
                          "monitor": "30s", "max_failure_ratio": 0.25, "order": "start-first"},
        "rollback_config": {"parallelism": 1, "delay": "0s", "failure_action": "pause",
                            "monitor": "5s", "max_failure_ratio": 0, "order": "stop-first"},
        "restart_policy": {"condition": "on-failure", "delay": "5s", "max_attempts": 3,
                           "window": "2m"},
        "placement": {"constraints": ["node.role == worker", "node.labels.zone != b"],
                      "preferences": [{"spread": "node.labels.zone"}],
                      "max_replicas_per_node": 2},
        "resources": {"limits": {"cpus": "0.5", "memory": "512M"},
                      "reservations": {"cpus": 0.25, "memory": 268435456}},
    },
}
DB: dict[str, Any] = {
    "image": "postgres:16",
    "environment": ["POSTGRES_PASSWORD_FILE=/run/secrets/pw", "EMPTY"],
    "command": "postgres -c max_connections=200",
    "healthcheck": {"test": "pg_isready", "interval": "10s"},
    "networks": ["back"],
    "secrets": ["pw"],
    "volumes": ["data:/var/lib/postgresql/data"],
    "deploy": {"mode": "global", "endpoint_mode": "dnsrr",
               "placement": {"constraints": ["node.labels.db == true"]},
               "restart_policy": {"condition": "any"}},
}
JOB: dict[str, Any] = {
    "image": "busybox",
    "command": ["sh", "-c", "echo done"],
    "healthcheck": {"disable": True},
    "ports": [{"target": 7000, "published": 7000, "mode": "host"}],
    "deploy": {"mode": "replicated-job", "replicas": 2,
               "restart_policy": {"condition": "none"}},
}
TOP: dict[str, Any] = {
    "networks": {"front": {"driver": "overlay", "attachable": False, "labels": {"n": "1"},
                           "ipam": {"driver": "default",
                                    "config": [{"subnet": "10.20.0.0/24"}]}},
                 "back": {"internal": True, "driver_opts": {"encrypted": ""}},
                 "outside": {"external": True, "name": "shared-net"}},
    "volumes": {"data": {"driver": "local", "driver_opts": {"type": "tmpfs"},
                         "labels": ["v=1"]},
                "old": {"external": True}},
    "secrets": {"pw": {"file": "./s.txt", "labels": {"s": "1"}},
                "ext": {"external": True, "name": "outside-secret"}},
    "configs": {"conf": {"file": "c.txt", "name": "app-conf-v1"}},
}
_CONTAINER_KEYS = ("command", "entrypoint", "environment", "env_file", "labels", "hostname",
                   "user", "working_dir", "init", "read_only", "tty", "stop_signal",
                   "stop_grace_period", "dns", "dns_search", "dns_opt", "group_add",
                   "extra_hosts", "cap_add", "cap_drop", "sysctls", "ulimits", "tmpfs",
                   "healthcheck", "logging", "depends_on")
_REFERENCE_KEYS = ("ports", "networks", "secrets", "configs", "volumes")


def _web(*keys: str) -> dict[str, Any]:
    return {"image": WEB["image"], **{key: WEB[key] for key in keys}}


# small files (the loader's YAML parsing is most of an example's time), each one area
BASES: list[dict[str, Any]] = [
    {"version": "3.8", "services": {"web": _web(*_CONTAINER_KEYS)}},
    {"version": "3.13", "services": {"web": _web(*_REFERENCE_KEYS)}, **TOP},
    {"services": {"web": _web("deploy"), "db": {"image": DB["image"], "deploy": DB["deploy"]}}},
    {"services": {"job": JOB, "db": {**DB, "deploy": {"mode": "global-job"}}},
     "secrets": TOP["secrets"], "volumes": TOP["volumes"], "networks": {"back": {}}},
    {"version": "3", "services": {"one": {"image": "nginx"}}},
]


def test_the_base_documents_deploy() -> None:
    """The mutations start from files the loader and the manager both accept."""
    for document in BASES:
        assert deploy_accepted(dump(document)), document


def _paths(node: Any, path: tuple = ()) -> list[tuple]:
    """Every key path of a document (dict keys and list indexes), the root included."""
    out = [path]
    if isinstance(node, dict):
        for key, item in node.items():
            out.extend(_paths(item, path + (key,)))
    elif isinstance(node, list):
        for index, item in enumerate(node):
            out.extend(_paths(item, path + (index,)))
    return out


def _at(node: Any, path: tuple) -> Any:
    for key in path:
        node = node[key]
    return node


SCALARS = st.one_of(
    st.none(), st.booleans(),
    st.sampled_from([0, 1, -1, 7, 65535, 65536, 2**31, 2**32, 2**63 - 1, 2**63, 2**64, -2**63,
                     10**30, 0.5, -0.5, 1.5, 1e300, float("inf"), float("-inf"),
                     float("nan")]),
    st.integers(-2**70, 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(EDGE_VALUES), VALUES,
    st.sampled_from(["3", "3.0", "3.13", "3.14", "2.4", "", "x-ext", "node.role == worker",
                     "node.labels.zone", "CMD", "CMD-SHELL", "NONE", "SIGKILL", "SIGNOPE",
                     "/abs", "rel/path", "~/x", "/a:/b:ro", "data:/d:nocopy", "${X}",
                     "${UNSET:-5}", "$$", "10.0.0.0/8", "::1", "fe80::/64", "0o777",
                     "0x10", "1_000", "-0", "1s", "-1s", "99999999999h", "1.5m", "0.1ns",
                     "10Gi", "1e3", "tcp", "sctp", "host", "ingress", "local", "overlay",
                     "bridge", "nofile", "nproc", "core", "e.txt", "bad.env", "a.env",
                     "10.20.0.1/24", "10.20.0.0/30", "10.20.0.0/16", "encrypted",
                     "kernel.panic", "SIGRTMAX", "SYS_ADMIN", "RESET", "../x", "./x"]))
VALUE_TREES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["target", "published", "source", "soft", "hard", "cpus", "memory",
                         "spread", "test", "file", "external", "name", "aliases", "x-ext",
                         "unknown"]) | st.text(max_size=5), inner, max_size=3),
    max_leaves=6)
UNKNOWN_KEYS = st.sampled_from(["x-ext", "unknown", "imagee", "replica", "Image", "<<", "",
                                " ", "services", "deploy", "external", "name", "ports",
                                "kernel.panic", "net.ipv4.ip_forward", "A B", "A=B", "web",
                                "a" * 64, ".", "..", "-x", "default"]) \
    | st.text(max_size=8)


@st.composite
def mutated_documents(draw: st.DrawFn) -> dict[str, Any]:
    document = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(document)
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["drop", "replace", "replace", "replace", "inject",
                                       "duplicate", "graft", "version"]))
        if action == "version":
            document["version"] = draw(SCALARS)
            continue
        if not path:
            continue
        parent, key = _at(document, path[:-1]), path[-1]
        if action == "drop":
            del parent[key]
        elif action == "replace":
            parent[key] = draw(VALUE_TREES)
        elif action == "inject":
            target = parent[key]
            if isinstance(target, dict):
                target[draw(UNKNOWN_KEYS)] = draw(VALUE_TREES)
            elif isinstance(target, list):
                target.append(draw(VALUE_TREES))
            else:
                parent[key] = draw(VALUE_TREES)
        elif action == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[key]))
        elif action == "graft":     # a part of the file put elsewhere (another service...)
            source = draw(st.sampled_from(paths))
            if source[:len(path)] != path:
                parent[key] = copy.deepcopy(_at(document, source))
    return document


@fuzz_settings(1500)
@given(mutated_documents(),
       st.dictionaries(st.sampled_from(["X", "HOME", "UNSET"]),
                       st.sampled_from(["", "5", "/home/u", "a b", "$", "x"]), max_size=2))
def test_mutated_stacks_deploy_or_are_refused(document: dict[str, Any],
                                              env: dict[str, str]) -> None:
    event("accepted" if deploy_accepted(dump(document), env=env) else "refused")


@fuzz_settings(300)
@given(mutated_documents(), mutated_documents())
def test_two_mutated_files_merge_and_deploy_or_are_refused(first: dict[str, Any],
                                                           second: dict[str, Any]) -> None:
    """`-c a.yml -c b.yml`: the second file's keys merged over the first's."""
    deploy_accepted(dump(first), dump(second))


# ------------------------------------------------------------ interpolation --

TEMPLATE_PIECES = st.sampled_from(["$", "$$", "${", "}", "{", ":-", ":?", ":+", "-", "?", "+",
                                   "A", "B", "_X", "9", " ", "${A}", "${B:-d}", "${A:?req}",
                                   "${A?}", "${C:+alt}", "$A", "$B_", "\\", "é", "${A:-${B}}"])
TEMPLATES = st.lists(TEMPLATE_PIECES | st.text(max_size=3), max_size=10).map("".join)
ENVS = st.dictionaries(st.sampled_from(["A", "B", "C", "_X"]),
                       st.sampled_from(["", "1", "x y", "$B", "${A}", "}"]) | st.text(max_size=4),
                       max_size=4)


@fuzz_settings(400)
@given(TEMPLATES, ENVS)
@example("${A:-${B:-${C:-x}}}", {})
@example("${A:?}", {"A": ""})
@example("$" * 7, {})
def test_templates_substitute_or_are_refused(template: str, env: dict[str, str]) -> None:
    warnings = Warnings()
    try:
        value = substitute(template, env, warnings)
    except ComposeError as exc:
        check_refusal(exc, from_load=False)
        return
    assert isinstance(value, str)
    if "$" not in template:
        assert value == template
    tree = interpolate({"k": [template, {"n": template}]}, env, Warnings(), "services.web")
    assert tree == {"k": [value, {"n": value}]}


@fuzz_settings(300)
@given(st.sampled_from(["image", "command", "environment", "ports", "stop_grace_period",
                        "deploy.replicas", "deploy.resources.limits.memory",
                        "deploy.resources.limits.cpus", "deploy.update_config.delay",
                        "deploy.update_config.max_failure_ratio", "healthcheck.retries",
                        "read_only", "ulimits.nofile", "user", "volumes",
                        "deploy.placement.constraints"]), TEMPLATES, ENVS)
def test_templated_values_deploy_or_are_refused(key: str, template: str,
                                                env: dict[str, str]) -> None:
    service: dict[str, Any] = {"image": "nginx:1"}
    node = service
    *parents, last = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = [template] if last in ("ports", "volumes", "constraints") else template
    text = dump({"services": {"web": service}})
    deploy_accepted(text, env={**env, "HOME": "/home/u"})


# ----------------------------------------------------------- value parsers --

def value_or_refusal(read: Callable[[Any, str], Any], value: Any) -> Any:
    try:
        return read(value, "services.web.key")
    except ComposeError as exc:
        check_refusal(exc, from_load=False)
        assert exc.path == "services.web.key"
        return None


DURATION_TEXT = st.lists(st.sampled_from(["0", "1", "10", "9" * 20, ".", ".5", "1.5", "ns",
                                          "us", "µs", "ms", "s", "m", "h", "-", "+", " ",
                                          "e3"]) | st.text(max_size=3),
                         min_size=1, max_size=6).map("".join)
SIZE_TEXT = st.lists(st.sampled_from(["0", "1", "512", "9" * 25, ".", ".5", "b", "k", "m", "g",
                                      "t", "K", "M", "G", "i", "B", "-", " ", "e9"])
                     | st.text(max_size=3), min_size=1, max_size=6).map("".join)
ANY_VALUE = SCALARS | VALUE_TREES


@fuzz_settings(300)
@given(DURATION_TEXT | ANY_VALUE)
def test_durations_are_nanoseconds_or_refused(value: Any) -> None:
    nanos = value_or_refusal(v.duration, value)
    if nanos is not None:
        assert isinstance(nanos, int) and 0 <= nanos <= INT64_MAX


@fuzz_settings(300)
@given(SIZE_TEXT | ANY_VALUE)
def test_sizes_are_bytes_or_refused(value: Any) -> None:
    size = value_or_refusal(v.size, value)
    if size is not None:
        assert isinstance(size, int) and 0 <= size <= INT64_MAX


@fuzz_settings(300)
@given(DURATION_TEXT | SIZE_TEXT | ANY_VALUE)
def test_cpus_and_numbers_are_values_or_refused(value: Any) -> None:
    cpus = value_or_refusal(v.cpus, value)
    if cpus is not None:
        text, nanos = cpus
        assert isinstance(text, str) and isinstance(nanos, int) and 0 <= nanos <= INT64_MAX
    for read in (v.integer, v.number, v.boolean):
        value_or_refusal(read, value)
        if isinstance(value, str):
            value_or_refusal(read, Interpolated(value))


PORT_TEXT = st.lists(st.sampled_from(["0", "1", "80", "8080", "65535", "65536", "9" * 20, ":",
                                      "-", "/", "tcp", "udp", "sctp", "icmp", "127.0.0.1",
                                      " ", "١", "+1"]) | st.text(max_size=3),
                     min_size=1, max_size=7).map("".join)


@fuzz_settings(300)
@given(st.lists(PORT_TEXT | ANY_VALUE, min_size=1, max_size=3))
@example(["1-65535:1-65535"])
@example(["8080-8081:80"])
def test_ports_are_port_configs_or_refused(items: list[Any]) -> None:
    """The compose port forms (short strings, numbers, long mappings) of `ports:`."""
    try:
        svc = read_service("web", {"image": "nginx", "ports": items}, "services.web",
                           WORKDIR, {}, _read_text)
    except ComposeError as exc:
        check_refusal(exc, from_load=False)
        assert all(p.path.startswith("services.web.ports") for p in exc.errors)
        return
    for port in svc.ports or ():
        assert 1 <= port.target <= 65535
        assert port.published is None or 1 <= port.published <= 65535
        assert port.protocol in ("tcp", "udp", "sctp") and port.mode in ("ingress", "host")
