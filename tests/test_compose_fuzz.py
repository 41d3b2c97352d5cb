"""The loader never fails with anything but ComposeError, whatever it is fed.

Hypothesis generates random YAML texts, random nested structures written as
YAML (with compose's own key names, so that deep paths are reached), and
random values put at every key of a valid service; the loader must return a
stack or raise ComposeError.
"""
from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli.compose.errors import ComposeError, Warnings
from cli.compose.interpolate import substitute
from cli.compose.service import SERVICE_KEYS
from tests.compose_helpers import ATSEA, load_texts

KEYS = list(SERVICE_KEYS) + [
    "services", "networks", "volumes", "secrets", "configs", "version", "web", "replicas",
    "mode", "placement", "constraints", "preferences", "spread", "resources", "limits",
    "reservations", "cpus", "memory", "update_config", "rollback_config", "restart_policy",
    "condition", "delay", "target", "published", "protocol", "source", "type", "read_only",
    "bind", "volume", "tmpfs", "size", "external", "name", "file", "driver", "driver_opts",
    "ipam", "config", "subnet", "aliases", "test", "interval", "soft", "hard", "nofile",
    "options", "max-size", "x-ext", "<<"]
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
    st.sampled_from(["", "3", "3.8", "2", "80", "8080:80", "8080:80/udp", "/data", "a:/b:ro",
                     "10s", "1m30s", "512M", "0.5", "${X}", "${X:-1}", "$$", "${", "$",
                     "node.role==worker", "CMD", "CMD-SHELL", "NONE", "host", "global",
                     "on-failure", "rollback", "json-file", "overlay", "true", "yes", "~"]),
    st.text(max_size=12))
TREES = st.recursive(
    SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6),
                                               children, max_size=5)),
    max_leaves=30)
ENV = st.dictionaries(st.sampled_from(["X", "Y", "HOME"]), st.text(max_size=5), max_size=3)
FUZZ = settings(max_examples=400, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FILES = {"/stacks/app/a.env": "A=1\n", "/stacks/app/s.txt": "secret"}


def load_or_refuse(*texts: str, env: dict[str, str] | None = None) -> None:
    try:
        load_texts(*texts, env=env, files=FILES)
    except ComposeError as exc:
        assert str(exc)
        # every problem of the load is its own line, in a file the load was given
        assert exc.errors and all(problem.message and problem.file for problem in exc.errors)
        assert (exc.message, exc.file, exc.path) == (
            exc.errors[0].message, exc.errors[0].file, exc.errors[0].path)
        assert len(str(exc).splitlines()) >= len(exc.errors)


def dump(value: Any) -> str:
    return yaml.safe_dump(value, allow_unicode=True)


@FUZZ
@given(st.text(max_size=200))
def test_random_text(text: str) -> None:
    load_or_refuse(text)


@FUZZ
@given(st.lists(st.sampled_from(
    ["services:", "  web:", "    image: a", "    <<: *x", "x: &x", "  - a", "  k: v", "- *x",
     "    ports: [80", "    deploy: {replicas: 2}", "a: !!binary aGk=", "b: !!set {a}",
     "c: !!timestamp 2001-12-14", "d: !!omap [a: 1]", "? complex", ": key", "e: |", "  x",
     "---", "...", "%YAML 1.1", "f: 'unterminated", "\t", "g: &y [*y]"]), max_size=12))
def test_random_yaml_lines(lines: list[str]) -> None:
    load_or_refuse("\n".join(lines) + "\n")


@FUZZ
@given(TREES, ENV)
def test_random_documents(tree: Any, env: dict[str, str]) -> None:
    load_or_refuse(dump(tree), env=env)


@FUZZ
@given(st.sampled_from(KEYS), TREES, TREES, ENV)
def test_random_values_in_a_valid_service(key: str, value: Any, other: Any,
                                          env: dict[str, str]) -> None:
    base = {"services": {"web": {"image": "nginx:1", key: value, "deploy": {key: other}}},
            "networks": {"front": {key: other}}, "volumes": {"data": None},
            "secrets": {"s": {"file": "s.txt", key: value}}}
    load_or_refuse(dump(base), dump({"services": {"web": {key: other}}}), env=env)


@FUZZ
@given(st.dictionaries(st.sampled_from(KEYS), TREES, max_size=6))
def test_random_top_level(document: dict[str, Any]) -> None:
    load_or_refuse(dump(document))


@FUZZ
@given(st.text(alphabet="$ {}:-?+_aZ9\\", max_size=30), ENV)
def test_random_templates(template: str, env: dict[str, str]) -> None:
    warnings = Warnings()
    try:
        assert isinstance(substitute(template, env, warnings), str)
    except ComposeError as exc:
        assert exc.message


@FUZZ
@given(st.data())
def test_mutated_atsea_file(data: st.DataObject) -> None:
    """Random edits (a span cut, replaced or duplicated) of a real stack file."""
    text = ATSEA
    for _ in range(data.draw(st.integers(1, 4))):
        start = data.draw(st.integers(0, len(text)))
        end = data.draw(st.integers(start, min(len(text), start + 40)))
        replacement = data.draw(st.sampled_from(["", text[start:end] * 2, "- x\n", ": ", "{",
                                                 "\n  ", "${A}", "&a ", "*a", "0x1"]))
        text = text[:start] + replacement + text[end:]
    load_or_refuse(text)
