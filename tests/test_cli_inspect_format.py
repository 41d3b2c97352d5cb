"""`-f/--format` of `swarm node|service|secret|config inspect` and `swarm inspect`.

Run in process against the real Control API over the seeded in-memory cluster
(tests/cliserver.py): each object found is rendered through the template, one output
per object, reading the same document `inspect` prints, with Docker's field names
(`.Spec.Name`, `.ID`, `.Spec.TaskTemplate.ContainerSpec.Image`) mapped onto it. A
template that names no field, or `--format` beside `--pretty`, is refused before any
call (exit 1, nothing printed).
"""
from __future__ import annotations

import json

import pytest

from cli.inspectformat import snake
from cli.templates import Template
from tests.cliserver import InProcessClient, run, serve


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> InProcessClient:
    return serve(monkeypatch)


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict]:
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    return json.loads(out)


# ---------------------------------------------------------------- service ----

def test_service_inspect_renders_each_service_with_dockers_field_names(capsys, cluster) -> None:
    ids = [doc["id"] for doc in _json(capsys, "service", "inspect", "web", "db")]
    code, out, err = run(capsys, "service", "inspect", "-f",
                         "{{.Spec.Name}} {{.ID}} {{index .Spec.Labels \"tier\"}} "
                         "{{.Spec.TaskTemplate.ContainerSpec.Image}} "
                         "{{.Spec.Mode.Replicated.Replicas}}", "web", "db")
    assert (code, err) == (0, "")
    assert out == f"web {ids[0]} front nginx:2 2\ndb {ids[1]}  db:1 1\n"


def test_service_inspect_format_reads_the_document_inspect_prints(capsys, cluster) -> None:
    doc = _json(capsys, "service", "inspect", "web")[0]
    code, out, _ = run(capsys, "service", "inspect", "--format", "{{json .Spec}}", "web")
    assert code == 0 and json.loads(out) == doc["spec"]
    # the .proto's own names, as the JSON shows them, work as well as Docker's
    code, out, _ = run(capsys, "service", "inspect", "--format",
                       "{{.spec.annotations.name}}|{{.Spec.Labels}}|{{.Version.Index}}", "web")
    assert code == 0
    assert out == f"web|map[tier:front]|{doc['meta']['version']}\n"


def test_service_inspect_format_with_pretty_is_refused_before_any_call(capsys, cluster) -> None:
    code, out, err = run(capsys, "service", "inspect", "--pretty", "-f", "{{.ID}}", "web")
    assert (code, out) == (1, "")
    assert "--format is incompatible with human friendly format" in err
    code, out, err = run(capsys, "service", "inspect", "-f", "pretty {{.ID}}", "web")
    assert (code, out) == (1, "")
    assert "Cannot supply extra formatting options to the pretty template" in err
    assert cluster.methods == []


def test_format_pretty_is_pretty(capsys, cluster) -> None:
    for kind, ref in (("service", "web"), ("node", "w1"), ("secret", "pw"), ("config", "conf")):
        pretty = run(capsys, kind, "inspect", "--pretty", ref)
        assert pretty[0] == 0 and "ID:" in pretty[1], pretty
        assert run(capsys, kind, "inspect", "--format", "pretty", ref) == pretty


# ------------------------------------------------------------------- node ----

def test_node_inspect_renders_each_node(capsys, cluster) -> None:
    code, out, err = run(capsys, "node", "inspect", "-f",
                         "{{.Description.Hostname}} {{.Spec.Role}} {{.Status.State}} "
                         "{{.ManagerStatus.Leader}}", "m1", "w2")
    assert (code, err) == (0, "")
    # a worker has no manager status: its fields read as their zero values
    assert out == "m1 MANAGER READY true\nw2 WORKER DOWN false\n"
    code, out, _ = run(capsys, "node", "inspect", "--format", "{{.ID}}")   # self
    assert (code, out) == (0, "m1\n")


def test_node_inspect_format_with_pretty_is_refused(capsys, cluster) -> None:
    code, out, err = run(capsys, "node", "inspect", "--pretty", "-f", "{{.ID}}", "m1")
    assert (code, out) == (1, "")
    assert "--format is incompatible with human friendly format" in err


# -------------------------------------------------------- secret, config ----

def test_secret_and_config_inspect_render_dockers_document(capsys, cluster) -> None:
    secret = _json(capsys, "secret", "inspect", "pw")[0]
    code, out, err = run(capsys, "secret", "inspect", "-f", "{{.Spec.Name}} {{.ID}} "
                         "{{.Version.Index}} {{json .Spec.Labels}}", "pw")
    assert (code, err) == (0, "")
    assert out == f"pw {secret['ID']} {secret['Version']['Index']} {{}}\n"
    config = _json(capsys, "config", "inspect", "conf")[0]
    code, out, _ = run(capsys, "config", "inspect", "--format", "{{.Spec.Name}}:{{.Spec.Data}}",
                       "conf")
    assert (code, out) == (0, f"conf:{config['Spec']['Data']}\n")


def test_secret_inspect_refuses_a_field_its_document_lacks(capsys, cluster) -> None:
    code, out, err = run(capsys, "secret", "inspect", "-f", "{{.Spec.Data}}", "pw")
    assert (code, out) == (1, "")
    assert '".Spec" has no field "Data"' in err and "Name, Labels" in err
    assert cluster.methods == []


# ---------------------------------------------------------------- errors ----

@pytest.mark.parametrize("argv, message", [
    (["service", "inspect", "-f", "{{.Spec.Nme}}", "web"], '".Spec" has no field "Nme"'),
    (["node", "inspect", "-f", "{{.Hostname}}", "m1"], 'a node has no field "Hostname"'),
    (["service", "inspect", "-f", "{{.ID.Short}}", "web"], '".ID" is not an object'),
    (["config", "inspect", "-f", "{{.Name}}", "conf"], 'a config has no field "Name"'),
    (["service", "inspect", "-f", "{{nosuch .ID}}", "web"], 'unknown function "nosuch"'),
    (["service", "inspect", "-f", "{{.ID", "web"], 'unbalanced'),
    (["service", "inspect", "-f", "{{index .Spec.Labels}}", "web"], "at least one key"),
    (["inspect", "-f", "{{.Nothing}}", "web"], 'has no field "Nothing"'),
])
def test_a_template_that_cannot_run_is_refused_before_any_call(capsys, cluster, argv,
                                                               message) -> None:
    code, out, err = run(capsys, *argv)
    assert (code, out) == (1, "")
    assert err.startswith("Error: ") and message in err, err
    assert cluster.methods == []


def test_a_template_that_fails_on_an_object_ends_the_command_with_exit_1(capsys,
                                                                          cluster) -> None:
    code, out, _ = run(capsys, "service", "inspect", "-f",
                       "{{index .Spec.TaskTemplate.ContainerSpec.Env 1}}", "web")
    assert (code, out) == (0, "B\n")
    code, out, err = run(capsys, "service", "inspect", "-f",
                         "{{index .Spec.TaskTemplate.ContainerSpec.Env 5}}", "web")
    assert (code, out) == (1, "")
    assert err == "Error: error calling index: index out of range: 5\n"


def test_a_missing_object_fails_the_command_but_the_others_are_printed(capsys,
                                                                      cluster) -> None:
    code, out, err = run(capsys, "service", "inspect", "-f", "{{.Spec.Name}}", "web", "nope")
    assert code == 1 and out == "web\n" and "nope" in err


# --------------------------------------------------------- swarm inspect ----

def test_swarm_inspect_renders_each_kind_with_its_own_fields(capsys, cluster) -> None:
    code, out, err = run(capsys, "inspect", "-f", "{{.Spec.Name}}", "web", "w1")
    assert (code, err) == (0, "")
    assert out == "web\n\n"   # a node's spec has no name: the zero value, as Docker's
    code, out, _ = run(capsys, "inspect", "--type", "node", "-f",
                       "{{.Description.Hostname}}", "w1")
    assert (code, out) == (0, "w1\n")


def test_swarm_inspect_refuses_a_field_the_found_kind_lacks(capsys, cluster) -> None:
    code, out, err = run(capsys, "inspect", "-f", "{{.Description.Hostname}}", "web")
    assert (code, out) == (1, "")
    assert 'a service has no field "Description"' in err


# ----------------------------------------------------------------- units ----

def test_index_reads_a_map_by_key_and_a_list_by_number() -> None:
    row = {"Labels": {"a": "1"}, "List": ["x", "y"]}
    tpl = Template('{{index .Labels "a"}}/{{index .Labels "b"}}/{{index .List 1}}',
                   ("Labels", "List"))
    assert tpl.render(row) == "1//y"


def test_snake_spells_go_names_as_the_proto_does() -> None:
    assert [snake(n) for n in ("ID", "NodeID", "EngineVersion", "VirtualIPs", "NanoCPUs",
                               "TLSInfo", "OS", "ManagerStatus")] == [
        "id", "node_id", "engine_version", "virtual_ips", "nano_cpus", "tls_info", "os",
        "manager_status"]
