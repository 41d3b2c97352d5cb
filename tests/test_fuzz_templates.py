"""Templates: `--format` (cli/templates.py) and the service templates the agent expands.

`--format` values are random text, text glued from the template language's pieces, and
templates built from its grammar (actions of pipelines of commands of fields,
functions, string and number literals); rendered over
rows shaped like the `ls` commands' they must give text or `UsageError` with a
message, never another exception. Templates built only from the documented
language render each field as the row holds it. The agent's service templates
(worker/templates.py: `{{.Node.Hostname}}` in env, hostname and labels) must
never raise, leave text without `{{` alone and replace every known
placeholder. Examples: 400 for --format, 300 for the others (derandomized).
"""
from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from cli.parsing import UsageError
from cli.templates import render
from proto import objects_pb2 as pb
from tests.fuzz_helpers import VALUES, fuzz_settings
from worker import templates as service_templates

FIELDS = ("ID", "Name", "Mode", "Replicas", "Labels", "Health")
ROWS: list[dict[str, Any]] = [
    {"ID": "abc123", "Name": "web", "Mode": "replicated", "Replicas": "2/2",
     "Labels": {"k": "v", "a": "b"}, "Health": {"Status": "healthy"}},
    {"ID": "def", "Name": "ü", "Mode": None, "Replicas": True, "Labels": {}, "Health": [1, 2]}]
PIECES = ("{{", "}}", "{{-", "-}}", " ", ".", ".ID", ".Name", ".Labels", ".Labels.k",
          ".Health.Status", ".Nope", "json", "lower", "upper", "title", "truncate", "println",
          "print", "|", '"', "'", '"x"', "'y'", "3", "-1", "99999999999999999999", "0", "\\t",
          "\\n", "table", "table ", "{{.}}", "if", "end", "range", "$x", "(", ")")
WORDS = st.sampled_from([".ID", ".Name", ".Mode", ".Replicas", ".Labels", ".Labels.k",
                         ".Health.Status", ".Nope", ".", "json", "lower", "upper", "title",
                         "truncate", "println", "print", '"x"', "'y'", '"a b"', "3", "-1", "0",
                         "99999999999999999999", "index", "if"])
PIPELINES = st.lists(st.lists(WORDS, min_size=1, max_size=3).map(" ".join),
                     min_size=1, max_size=3).map(" | ".join)
ACTIONS = st.tuples(st.sampled_from(["{{", "{{- ", "{{ "]), PIPELINES,
                    st.sampled_from(["}}", " -}}", " }}"])).map("".join)
STRUCTURED = st.tuples(st.sampled_from(["", "table ", "table"]),
                       st.lists(ACTIONS | st.sampled_from(["\\t", "\\n", " ", "x", ":"]),
                                max_size=5).map("".join)).map("".join)
FORMATS = STRUCTURED | st.lists(st.sampled_from(PIECES) | VALUES, max_size=10).map("".join)


@fuzz_settings(400)
@given(FORMATS | VALUES)
def test_format_renders_or_is_refused(fmt: str) -> None:
    try:
        text = render(fmt, ROWS, ("ID", "Name"), FIELDS)
    except UsageError as exc:
        assert str(exc)
        return
    assert isinstance(text, str)


@fuzz_settings(300)
@given(st.lists(st.sampled_from(["ID", "Name", "Mode"]), min_size=1, max_size=4),
       st.sampled_from(["", "lower", "upper"]), st.text(alphabet="ab -:,", max_size=3))
def test_documented_templates_render_the_fields(fields: list[str], func: str, sep: str
                                                ) -> None:
    actions = [f"{{{{{func} .{f}}}}}" if func else f"{{{{.{f}}}}}" for f in fields]
    text = render(sep.join(actions), ROWS[:1], ("ID",), FIELDS)
    values = [str(ROWS[0][f]) for f in fields]
    wanted = sep.join(getattr(v, func)() if func else v for v in values)
    assert text == wanted


PLACEHOLDERS = (".Service.ID", ".Service.Name", ".Node.ID", ".Node.Hostname",
                ".Node.Platform.OS", ".Node.Platform.Architecture", ".Task.ID", ".Task.Name",
                ".Task.Slot")
SERVICE_PIECES = ("{{", "}}", " ", *PLACEHOLDERS, ".Service.Labels", '"k"', "index",
                  ".Nope", "-", "{", "}")


def _task() -> pb.Task:
    task = pb.Task(id="t" * 25, service_id="s" * 25, service_name="web", slot=3)
    task.annotations.name = "web.3"
    return task


VALUES_OF = service_templates.context(_task(), "n" * 25, "host1")


@fuzz_settings(300)
@given(st.lists(st.sampled_from(SERVICE_PIECES) | VALUES, max_size=10).map("".join))
def test_service_templates_never_raise(text: str) -> None:
    expanded = service_templates.expand(text, VALUES_OF, {"k": "v"})
    assert isinstance(expanded, str)
    if "{{" not in text:
        assert expanded == text


@fuzz_settings(300)
@given(st.lists(st.sampled_from(PLACEHOLDERS) | st.text(alphabet="ab-_. ", max_size=4),
                max_size=6))
def test_service_templates_replace_every_known_placeholder(parts: list[str]) -> None:
    text = "".join(f"{{{{{p}}}}}" if p in PLACEHOLDERS else p for p in parts)
    wanted = "".join(VALUES_OF[p] if p in PLACEHOLDERS else p for p in parts)
    assert service_templates.expand(text, VALUES_OF) == wanted
