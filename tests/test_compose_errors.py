"""Every independent problem of a compose load is reported at once: one ComposeError
listing them (a line each, with file, key path and what was expected), sorted by file
then by the order found; problems that leave nothing to check still stop at once, and a
problem is not followed by the errors it causes elsewhere."""
from __future__ import annotations

import io

import pytest

from cli.client import CLIError
from cli.commands_stack import load_stack
from cli.compose.errors import Collector, ComposeError
from tests.compose_helpers import load_texts, refused, service

THREE = """\
services:
  web:
    image: nginx:1
    hostnam: web
  db:
    image: postgres:16
    deploy:
      replicas: two
  api:
    image: api:1
    secrets: [token]
secrets:
  cert:
    external: true
"""
THREE_LINES = [
    'a.yml, services.web.hostnam: unknown key "hostnam" (did you mean "hostname"?)',
    "a.yml, services.db.deploy.replicas: must be an integer, not a string ('two')",
    'a.yml, services.api.secrets[0]: undefined secret "token": declare it in the top-level '
    "secrets",
]


def test_a_bad_key_a_bad_value_and_an_undeclared_secret_are_three_errors() -> None:
    error = refused(THREE)
    assert [(e.file, e.path) for e in error.errors] == [
        ("a.yml", "services.web.hostnam"), ("a.yml", "services.db.deploy.replicas"),
        ("a.yml", "services.api.secrets[0]")]
    assert str(error).splitlines() == THREE_LINES
    assert (error.file, error.path) == ("a.yml", "services.web.hostnam")
    assert error.message == error.errors[0].message


def test_one_problem_keeps_its_one_line_message() -> None:
    error = refused("services:\n  web:\n    image: nginx:1\n    deploy: {replicas: -1}\n")
    assert error.errors == [error]
    assert str(error) == error.text() == \
        "a.yml, services.web.deploy.replicas: must be at least 0, not -1"


def test_problems_of_one_service_and_its_deploy_are_all_reported() -> None:
    error = refused("""\
services:
  web:
    image: 5
    cap_add: 3
    stdin_open: true
    deploy: {mode: daemon, replicas: x, zzz: 1}
""")
    assert [e.path for e in error.errors] == [
        "services.web.stdin_open", "services.web.image", "services.web.cap_add",
        "services.web.deploy.zzz", "services.web.deploy.mode", "services.web.deploy.replicas"]


def test_top_level_sections_and_their_entries_are_checked_one_by_one() -> None:
    error = refused("""\
services:
  web: {image: "nginx:1"}
  "bad name": {image: "nginx:1"}
  scalar: 3
netwroks: {}
volumes: [data]
secrets:
  s: {file: 3}
  t: {}
configs:
  c: {driver: x, file: ./c}
""")
    assert [e.path for e in error.errors] == [
        "netwroks", "volumes", "services.bad name", "services.scalar", "secrets.s.file",
        "secrets.t", "configs.c.driver"]
    assert 'unknown key "netwroks" (did you mean "networks"?)' in error.errors[0].message


def test_whole_stack_problems_are_reported_together_and_with_section_problems() -> None:
    error = refused("""\
services:
  web:
    image: nginx:1
    networks: [front, back]
    secrets: [s]
    configs: [c]
    volumes: ["data:/data"]
    user: [root]
  noimage:
    hostname: x
""")
    assert [(e.path, e.message.split(":")[0]) for e in error.errors] == [
        ("services.web.user", "must be a string, not a list"),
        ("services.noimage.image", "invalid image reference for service noimage"),
        ("services.web.networks", 'service "web" references network "front", which is not '
                                  "declared"),
        ("services.web.networks", 'service "web" references network "back", which is not '
                                  "declared"),
        ("services.web.secrets[0]", 'undefined secret "s"'),
        ("services.web.configs[0]", 'undefined config "c"'),
        ("services.web.volumes[0]", 'undefined volume "data"')]


def test_errors_are_sorted_by_file_in_the_order_given() -> None:
    a = "version: '3.8'\nservices:\n  api:\n    image: api:1\n    secrets: [s]\n"
    b = "version: '3.7'\nservices:\n  web:\n    image: nginx:1\n    user: [root]\n  db:\n    image: [x]\n"
    error = refused(a, b)
    assert [(e.file, e.path) for e in error.errors] == [
        ("a.yml", "services.api.secrets[0]"), ("b.yml", "services.web.user"),
        ("b.yml", "services.db.image"), ("b.yml", "version")]
    assert error.errors[3].message == \
        "version mismatched between two composefiles : 3.8 and 3.7"


@pytest.mark.parametrize("bad,message", [
    ("services: [\n", "invalid YAML"),
    ("version: '2.4'\nservices: {web: {image: 5}}\n", "unsupported Compose file version: 2.4"),
    ("version: [3]\nservices: {web: {image: 5}}\n", "must be a string"),
    ("- a\n- b\n", "top-level object must be a mapping"),
])
def test_a_problem_that_leaves_nothing_to_check_stops_at_once(bad: str, message: str) -> None:
    error = refused(bad)
    assert len(error.errors) == 1 and message in str(error), str(error)
    both = refused("services:\n  web: {image: nginx, user: [1]}\n", bad)
    assert [e.file for e in both.errors] == ["a.yml", "b.yml"]
    assert message in both.errors[1].message


def test_a_failed_key_is_not_reported_again_as_missing() -> None:
    """The image that failed is not also "no image specified"; the names a refused
    section or entry declares are not "undefined" in the services using them."""
    error = refused("""\
services:
  web:
    image: ${IMG:?set IMG}
    secrets: [cert, key]
    networks: [front]
    volumes: ["data:/data"]
secrets:
  cert: {file: 3}
  key: {external: maybe}
networks: [front]
volumes:
  data: {driver_opts: 1}
""")
    assert [e.path for e in error.errors] == [
        "networks", "services.web.image", "volumes.data.driver_opts", "secrets.cert.file",
        "secrets.key.external"]
    assert "required variable IMG is missing a value: set IMG" in str(error)


def test_substitution_problems_are_kept_per_key() -> None:
    error = refused("services:\n  web:\n    image: nginx:1\n    user: ${U:?no user}\n"
                    "    hostname: ${H:?no host}\n    deploy: {replicas: '${N}'}\n",
                    env={"N": "many"})
    assert [e.path for e in error.errors] == [
        "services.web.user", "services.web.hostname", "services.web.deploy.replicas"]


def test_forbidden_keys_are_one_problem_beside_the_others() -> None:
    error = refused("services:\n  web:\n    image: nginx:1\n    extends: x\n"
                    "    mem_limit: 1g\n    user: [1]\n")
    assert [e.path for e in error.errors] == ["services.web.extends", "services.web.user"]
    assert "extends: " in error.errors[0].message and "mem_limit: " in error.errors[0].message


def test_a_valid_file_still_loads() -> None:
    stack = load_texts(THREE.replace("hostnam: web", "deploy: {replicas: 2}")
                       .replace("replicas: two", "replicas: 1").replace("[token]", "[cert]")
                       ).stack
    assert stack.services["web"].deploy.replicas == 2
    assert stack.services["api"].secrets is not None


def test_several_flattens_removes_repeats_and_sorts_by_file() -> None:
    one = ComposeError("first", "b.yml", "services.x")
    two = ComposeError("second", "a.yml", "services.y")
    nested = ComposeError.several([one, two], ["b.yml", "a.yml"])
    assert nested.errors == [one, two]
    again = ComposeError.several([nested, ComposeError("first", "b.yml", "services.x")])
    assert again.errors == [two, one]          # no order given: by file name
    assert ComposeError.several([one]) is one
    assert isinstance(again, ValueError) and str(again) == again.args[0] == (
        "a.yml, services.y: second\nb.yml, services.x: first")
    located = ComposeError.several([ComposeError("m", path="p"),
                                    ComposeError("n", "b.yml", "q")]).located("a.yml")
    assert [(e.file, e.path) for e in located.errors] == [("a.yml", "p"), ("b.yml", "q")]


def test_the_collector_keeps_compose_errors_only() -> None:
    errors = Collector()
    with errors:
        raise ComposeError("bad", path="services.web.deploy")
    with pytest.raises(KeyError):
        with errors:
            raise KeyError("not a compose problem")
    assert errors.failed_at("services.web.deploy.replicas")
    assert errors.failed_at("services.web.deploy")
    assert not errors.failed_at("services.web.deployed")
    with pytest.raises(ComposeError, match="^services.web.deploy: bad$"):
        errors.check()


def test_the_cli_prints_each_problem_on_its_own_line(tmp_path) -> None:
    path = tmp_path / "stack.yml"
    path.write_text(THREE)
    with pytest.raises(CLIError) as info:
        load_stack([str(path)], io.StringIO(), io.StringIO(), env={})
    lines = info.value.message.splitlines()
    assert lines == [f"Error: {str(path)}{THREE_LINES[0][5:]}"] + \
        [f"{str(path)}{line[5:]}" for line in THREE_LINES[1:]]


def test_a_digit_that_is_not_ascii_is_a_problem_not_a_traceback() -> None:
    # "²".isdigit() is True but int("²") fails: a ValueError from the loader before
    error = refused(service("    ports: ['²:80']\n"))
    assert "invalid port" in error.message
    error = refused(service("    secrets: [{source: s, uid: '²'}]\n") +
                    "secrets:\n  s: {file: ./s.txt}\n", files={"/stacks/app/s.txt": "x"})
    assert 'must be a numeric uid (0 to 4294967295), not "²"' in str(error)
