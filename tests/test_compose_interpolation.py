"""Variable substitution in compose files, following Docker's documented rules."""
from __future__ import annotations

import pytest

from cli.compose.errors import ComposeError, Warnings
from cli.compose.interpolate import Interpolated, interpolate, substitute
from tests.compose_helpers import load_texts, refused, service

ENV = {"SET": "value", "EMPTY": "", "TAG": "1.25", "PORT": "8080", "N": "3", "YES": "true"}


def sub(text: str, env: dict[str, str] | None = None) -> tuple[str, list[str]]:
    warnings = Warnings()
    return substitute(text, ENV if env is None else env, warnings), warnings.items


@pytest.mark.parametrize("text, expected", [
    ("$SET", "value"), ("${SET}", "value"), ("pre-${SET}-post", "pre-value-post"),
    ("$SET/x", "value/x"), ("${SET}x", "valuex"), ("$$SET", "$SET"), ("$${SET}", "${SET}"),
    ("a $$ b", "a $ b"), ("no variables", "no variables"),
    # :- default when unset or empty; - default when unset only
    ("${UNSET:-d}", "d"), ("${EMPTY:-d}", "d"), ("${SET:-d}", "value"),
    ("${UNSET-d}", "d"), ("${EMPTY-d}", ""), ("${SET-d}", "value"),
    ("${UNSET:-}", ""), ("${UNSET:-a b c}", "a b c"),
    # nested defaults
    ("${UNSET:-${SET}}", "value"), ("${UNSET:-${ALSO_UNSET:-deep}}", "deep"),
    ("${UNSET:-x${TAG}y}", "x1.25y"),
    # :+ / + alternates (Compose's spelling)
    ("${SET:+alt}", "alt"), ("${EMPTY:+alt}", ""), ("${EMPTY+alt}", "alt"), ("${UNSET+alt}", ""),
    # required, satisfied
    ("${SET:?must be set}", "value"), ("${SET?must be set}", "value"), ("${EMPTY?x}", ""),
])
def test_substitution_rules(text: str, expected: str) -> None:
    value, warnings = sub(text)
    assert value == expected
    assert warnings == []


def test_unset_variable_is_blank_with_docker_warning() -> None:
    value, warnings = sub("img:${NOPE}-$ALSO_NOPE-${NOPE}")
    assert value == "img:--"
    assert warnings == ['The "NOPE" variable is not set. Defaulting to a blank string.',
                        'The "ALSO_NOPE" variable is not set. Defaulting to a blank string.']


@pytest.mark.parametrize("text, message", [
    ("${UNSET:?you must set it}", "required variable UNSET is missing a value: you must set it"),
    ("${EMPTY:?no empty}", "required variable EMPTY is missing a value: no empty"),
    ("${UNSET?gone}", "required variable UNSET is missing a value: gone"),
    ("${UNSET?}", "required variable UNSET is missing a value"),
])
def test_required_variables(text: str, message: str) -> None:
    with pytest.raises(ComposeError) as info:
        sub(text)
    assert info.value.message == message


@pytest.mark.parametrize("text", ["$", "a $ b", "${}", "${SET", "${1A}", "$-x", "${SET!x}",
                                  "${SET:-x"])
def test_invalid_templates(text: str) -> None:
    with pytest.raises(ComposeError) as info:
        sub(text)
    assert "invalid interpolation format" in info.value.message
    assert "escape any $ with another $" in info.value.message


def test_values_not_keys_are_substituted() -> None:
    warnings = Warnings()
    out = interpolate({"$KEY": "$SET", "list": ["${TAG}", 5, None]}, ENV, warnings)
    assert out == {"$KEY": "value", "list": ["1.25", 5, None]}
    assert isinstance(out["$KEY"], Interpolated) and not isinstance(out["list"][1], str)


def test_error_names_file_and_path() -> None:
    error = refused(service("    environment:\n      A: ${NEED:?set NEED}\n"))
    assert error.file == "a.yml"
    assert error.path == "services.web.environment.A"
    assert "required variable NEED is missing a value: set NEED" in str(error)


def test_substituted_numbers_and_booleans_are_cast() -> None:
    loaded = load_texts(
        "services:\n  web:\n    image: nginx:${TAG}\n    tty: ${YES}\n    ports:\n"
        "      - target: 80\n        published: ${PORT}\n"
        "    deploy:\n      replicas: ${N}\n", env=ENV)
    web = loaded.stack.services["web"]
    assert web.image == "nginx:1.25" and web.tty is True
    assert web.deploy.replicas == 3 and web.ports is not None
    assert web.ports[0].published == 8080


def test_literal_string_where_a_number_is_expected_is_refused() -> None:
    error = refused(service("    deploy:\n      replicas: \"3\"\n"))
    assert error.path == "services.web.deploy.replicas"
    assert "must be an integer" in error.message


def test_substituted_value_that_is_not_a_number() -> None:
    error = refused(service("    deploy:\n      replicas: ${SET}\n"), env=ENV)
    assert error.path == "services.web.deploy.replicas"
    assert error.message == 'must be an integer, not "value"'


def test_load_collects_unset_warnings() -> None:
    loaded = load_texts(service("    environment:\n      - A=${MISSING}\n"))
    assert loaded.stack.services["web"].environment == {"A": ""}
    assert loaded.warnings == [
        'The "MISSING" variable is not set. Defaulting to a blank string.']


def test_extension_fields_are_not_interpolated() -> None:
    loaded = load_texts("x-junk: ${BROKEN\n" + service("    x-other: ${ALSO:?x}\n"))
    assert loaded.stack.services["web"].image == "nginx:1"
