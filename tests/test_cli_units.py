"""Unit tests for the pure parts of the `swarm` CLI: parsing, specs, formatting, progress."""
from __future__ import annotations

import argparse
import io
import json

import grpc
import pytest

from cli import format as fmt
from cli import parsing, pretty, specs
from cli.client import CLIError, describe_rpc_error, parse_target, resolve_host
from cli.commands_service import rollback_conflicts
from cli.servicelogs import log_line
from cli.flags import rewrite_bool_assignments
from cli.main import build_parser, main
from cli.parsing import UsageError
from cli.progress import Timeout, Waiter, compute_progress, deadline_for
from cli.tasklist import filter_tasks
from cli.templates import Template, render, tabulate
from proto import control_pb2 as cpb
from proto import model
from proto import objects_pb2 as pb

NOW = 1_700_000_000.0


def parse(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(rewrite_bool_assignments(argv))


def create(argv: list[str]) -> pb.ServiceSpec:
    return specs.create_spec(parse(["service", "create", *argv]))


def update(spec: pb.ServiceSpec, argv: list[str]) -> pb.ServiceSpec:
    return specs.update_spec(spec, parse(["service", "update", *argv, "web"]))


# ------------------------------------------------------------------ values ----

@pytest.mark.parametrize("text,nanos", [
    ("10s", 10 * 10**9), ("1m30s", 90 * 10**9), ("500ms", 500 * 10**6), ("1.5h", 5400 * 10**9),
    ("0", 0), ("2h3m4s", (2 * 3600 + 3 * 60 + 4) * 10**9), ("250us", 250_000), ("7ns", 7),
])
def test_parse_duration(text: str, nanos: int) -> None:
    assert parsing.parse_duration(text) == nanos


@pytest.mark.parametrize("text", ["10", "10x", "", "s", "1m30", "-5s", "1 s"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(UsageError, match="expected a number with a unit"):
        parsing.parse_duration(text, "--update-delay")


def test_format_duration_matches_go() -> None:
    assert parsing.format_duration(90 * 10**9) == "1m30s"
    assert parsing.format_duration(5 * 10**9) == "5s"
    assert parsing.format_duration(500 * 10**6) == "500ms"
    assert parsing.format_duration(3600 * 10**9) == "1h0m0s"
    assert parsing.format_duration(0) == "0s"


@pytest.mark.parametrize("text,size", [
    ("512M", 512 << 20), ("1g", 1 << 30), ("100kb", 100 << 10), ("2048", 2048),
    ("1.5G", int(1.5 * (1 << 30))), ("64MiB", 64 << 20), ("1 GB", 1 << 30),
])
def test_parse_size(text: str, size: int) -> None:
    assert parsing.parse_size(text) == size


def test_parse_size_rejects_with_message() -> None:
    with pytest.raises(UsageError, match=r'invalid size "12q" for --limit-memory.*512M'):
        parsing.parse_size("12q", "--limit-memory")


def test_format_size() -> None:
    assert parsing.format_size(512 << 20) == "512MiB"
    assert parsing.format_size(int(1.5 * (1 << 30))) == "1.5GiB"


def test_parse_cpus() -> None:
    assert parsing.parse_cpus("0.5") == 500_000_000
    assert parsing.parse_cpus("2") == 2_000_000_000
    for bad in ("-1", "abc", "nan"):
        with pytest.raises(UsageError, match="non-negative number of CPUs"):
            parsing.parse_cpus(bad, "--limit-cpu")


def test_parse_replicas() -> None:
    assert parsing.parse_replicas("3") == 3
    with pytest.raises(UsageError, match="invalid replicas value -1: must be a non-negative integer"):
        parsing.parse_replicas("-1")
    with pytest.raises(UsageError, match="non-negative integer"):
        parsing.parse_replicas("two")


# ------------------------------------------------------------------- ports ----

def test_publish_short_forms() -> None:
    (p,) = parsing.parse_publish("8080:80")
    assert (p.published_port, p.target_port, p.protocol, p.publish_mode) == (
        8080, 80, pb.PortConfig.TCP, pb.PortConfig.INGRESS)
    (p,) = parsing.parse_publish("53:53/udp")
    assert p.protocol == pb.PortConfig.UDP
    (p,) = parsing.parse_publish("80")
    assert (p.published_port, p.target_port) == (0, 80)
    ports = parsing.parse_publish("8080-8082:80-82")
    assert [(x.published_port, x.target_port) for x in ports] == [(8080, 80), (8081, 81), (8082, 82)]


def test_publish_long_form() -> None:
    (p,) = parsing.parse_publish("published=8080,target=80,protocol=udp,mode=host")
    assert (p.published_port, p.target_port, p.protocol, p.publish_mode) == (
        8080, 80, pb.PortConfig.UDP, pb.PortConfig.HOST)
    (p,) = parsing.parse_publish("target=80")
    assert p.published_port == 0 and p.publish_mode == pb.PortConfig.INGRESS


@pytest.mark.parametrize("spec,message", [
    ("abc", "expected \\[PUBLISHED:\\]TARGET"),
    ("80:abc", "expected \\[PUBLISHED:\\]TARGET"),
    ("8080:80/xyz", "expected tcp, udp or sctp"),
    ("1.2.3.4:8080:80", "host IP cannot be given"),
    ("published=8080", "missing target"),
    ("published=8080,target=80,mode=bridge", "expected ingress or host"),
    ("published=8080,target=80,color=red", "unknown field"),
    ("70000:80", "ports are 1-65535"),
    ("8080-8081:80", "ranges differ in size"),
])
def test_publish_errors(spec: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parsing.parse_publish(spec)


def test_ports_column_and_ranges() -> None:
    ports = parsing.parse_publish("8080-8081:80-81") + parsing.parse_publish("53:53/udp")
    ports += parsing.parse_publish("published=9000,target=90,mode=host")
    assert fmt.ports_column(ports) == "*:8080-8081->80-81/tcp, *:53->53/udp"
    assert fmt.ports_column(ports[-1:], ingress_only=False) == "*:9000->90/tcp"


# ------------------------------------------------------------- constraints ----

@pytest.mark.parametrize("expr", ["node.role==manager", "node.labels.zone!=a",
                                  "engine.labels.os==linux", "node.hostname==n1"])
def test_constraints_accepted(expr: str) -> None:
    assert parsing.validate_constraint(expr) == expr
    assert parsing.validate_constraint_locally(expr) == expr


@pytest.mark.parametrize("expr", ["node.role=manager", "node.foo==bar", "node.role==boss",
                                  "node.labels.zone==", "==x", "a==b==c"])
def test_constraints_rejected(expr: str) -> None:
    with pytest.raises(UsageError, match="constraint"):
        parsing.validate_constraint(expr)
    with pytest.raises(UsageError, match="constraint"):
        parsing.validate_constraint_locally(expr)


def test_placement_pref() -> None:
    assert parsing.parse_placement_pref("spread=node.labels.zone").spread == "node.labels.zone"
    with pytest.raises(UsageError, match="spread=node.labels"):
        parsing.parse_placement_pref("binpack=x")


def test_filters() -> None:
    got = parsing.parse_filters(["name=web", "label=a=b"], ("name", "label"))
    assert [(f.key, f.value) for f in got] == [("name", "web"), ("label", "a=b")]
    with pytest.raises(UsageError, match="invalid filter"):
        parsing.parse_filters(["color=red"], ("name",))
    with pytest.raises(UsageError, match="bad format"):
        parsing.parse_filters(["name"], ("name",))


# ------------------------------------------------------------- create spec ----

def test_create_spec_many_flags() -> None:
    spec = create([
        "--name", "web", "--replicas", "3", "-e", "A=1", "--env", "B=2", "-l", "tier=front",
        "--container-label", "c=d", "-u", "1000:1000", "-w", "/app", "--hostname", "h1",
        "--entrypoint", "/bin/sh -c", "--stop-signal", "SIGINT", "--stop-grace-period", "20s",
        "--limit-cpu", "0.5", "--limit-memory", "512M", "--reserve-cpu", "0.25",
        "--reserve-memory", "128m", "--restart-condition", "on-failure", "--restart-delay", "3s",
        "--restart-max-attempts", "4", "--restart-window", "1m", "--constraint",
        "node.role==worker", "--placement-pref", "spread=node.labels.zone",
        "--replicas-max-per-node", "2", "--update-parallelism", "2", "--update-delay", "10s",
        "--update-failure-action", "rollback", "--update-monitor", "3s",
        "--update-max-failure-ratio", "0.2", "--update-order", "start-first",
        "--rollback-parallelism", "0", "--rollback-order", "stop-first", "-p", "8080:80",
        "--publish", "published=53,target=53,protocol=udp,mode=host", "--network", "backend",
        "--endpoint-mode", "dnsrr", "--dns", "10.0.0.2", "--dns-search", "example.com",
        "--health-cmd", "wget -q localhost", "--health-interval", "5s", "--health-retries", "3",
        "--health-timeout", "2s", "--secret", "db_pass", "--config",
        "source=app,target=/etc/app.conf,mode=0440", "--init", "-t", "--read-only",
        "-d", "busybox:1.36", "sleep", "100",
    ])
    c = spec.task.container
    assert spec.annotations.name == "web" and spec.replicated.replicas == 3
    assert spec.annotations.labels == {"tier": "front"}
    assert c.image == "busybox:1.36" and list(c.args) == ["sleep", "100"]
    assert list(c.command) == ["/bin/sh", "-c"]
    assert list(c.env) == ["A=1", "B=2"] and c.labels == {"c": "d"}
    assert (c.user, c.dir, c.hostname, c.stop_signal) == ("1000:1000", "/app", "h1", "SIGINT")
    assert c.stop_grace_period.nanos == 20 * 10**9
    assert c.init and c.tty and c.read_only
    assert list(c.healthcheck.test) == ["CMD-SHELL", "wget -q localhost"]
    assert c.healthcheck.retries == 3 and c.healthcheck.timeout.nanos == 2 * 10**9
    assert c.secrets[0].secret_name == "db_pass" and c.secrets[0].target == "db_pass"
    assert c.secrets[0].mode == 0o444
    assert (c.configs[0].config_name, c.configs[0].target, c.configs[0].mode) == (
        "app", "/etc/app.conf", 0o440)
    assert list(c.dns_nameservers) == ["10.0.0.2"] and list(c.dns_search) == ["example.com"]
    r = spec.task.resources
    assert (r.limits.nano_cpus, r.limits.memory_bytes) == (500_000_000, 512 << 20)
    assert (r.reservations.nano_cpus, r.reservations.memory_bytes) == (250_000_000, 128 << 20)
    rp = spec.task.restart
    assert rp.condition == pb.RestartPolicy.ON_FAILURE and rp.has_delay
    assert (rp.delay.nanos, rp.max_attempts, rp.window.nanos) == (3 * 10**9, 4, 60 * 10**9)
    pl = spec.task.placement
    assert list(pl.constraints) == ["node.role==worker"] and pl.max_replicas == 2
    assert pl.preferences[0].spread == "node.labels.zone"
    u = spec.update
    assert (u.parallelism, u.delay.nanos, u.failure_action, u.monitor.nanos, u.order) == (
        2, 10 * 10**9, pb.UpdateConfig.ROLLBACK, 3 * 10**9, pb.UpdateConfig.START_FIRST)
    assert abs(u.max_failure_ratio - 0.2) < 1e-6
    assert spec.rollback.parallelism == 0 and spec.rollback.monitor.nanos == 5 * 10**9
    assert [n.target for n in spec.task.networks] == ["backend"]
    assert spec.endpoint.mode == pb.EndpointSpec.DNSRR
    assert [(p.published_port, p.target_port) for p in spec.endpoint.ports] == [(8080, 80), (53, 53)]


def test_create_defaults_follow_docker() -> None:
    spec = create(["nginx"])
    assert spec.WhichOneof("mode") == "replicated" and spec.replicated.replicas == 1
    assert spec.update.parallelism == 1 and spec.update.failure_action == pb.UpdateConfig.PAUSE
    assert spec.update.monitor.nanos == 5 * 10**9
    assert not spec.task.restart.has_delay and not spec.annotations.name
    assert list(spec.task.container.args) == []


def test_create_command_flags_stay_with_the_command() -> None:
    spec = create(["--name", "x", "busybox", "sh", "-c", "echo --name y"])
    assert spec.annotations.name == "x"
    assert list(spec.task.container.args) == ["sh", "-c", "echo --name y"]


def test_create_global_mode() -> None:
    spec = create(["--mode", "global", "busybox"])
    assert spec.WhichOneof("mode") == "global"
    with pytest.raises(UsageError, match="replicas can only be used with replicated mode"):
        create(["--mode", "global", "--replicas", "2", "busybox"])
    with pytest.raises(UsageError, match='invalid mode "job"'):
        create(["--mode", "job", "busybox"])


@pytest.mark.parametrize("argv,message", [
    (["--replicas", "-1", "busybox"], "invalid replicas value -1"),
    (["--replicas=-1", "busybox"], "invalid replicas value -1"),
    (["-p", "80:x", "busybox"], "expected \\[PUBLISHED:\\]TARGET"),
    (["--constraint", "node.role=worker", "busybox"], "constraint"),
    (["--restart-condition", "always", "busybox"], 'expected one of "any", "none", "on-failure"'),
    (["--update-failure-action", "explode", "busybox"], "--update-failure-action"),
    (["--rollback-failure-action", "rollback", "busybox"], "--rollback-failure-action"),
    (["--update-max-failure-ratio", "2", "busybox"], "between 0 and 1"),
    (["--stop-grace-period", "10", "busybox"], "--stop-grace-period"),
    (["--no-healthcheck", "--health-cmd", "x", "busybox"], "conflicts"),
    (["--tty=maybe", "busybox"], "expected true or false"),
])
def test_create_validation_errors(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        create(argv)


def test_bool_flags_accept_false() -> None:
    spec = create(["--tty=false", "--init=true", "busybox"])
    assert not spec.task.container.tty and spec.task.container.init
    assert rewrite_bool_assignments(["--tty=false", "--", "--tty=false"]) == [
        "--tty-value", "false", "--", "--tty=false"]


@pytest.mark.parametrize("argv,message", [
    (["--health-interval", "-1s", "busybox"],
     'invalid duration "-1s" for --health-interval: must not be negative'),
    (["--health-interval=-1s", "busybox"], "--health-interval: must not be negative"),
    (["--health-timeout", "-2s", "busybox"], "--health-timeout: must not be negative"),
    (["--health-start-period", "-500ms", "busybox"],
     "--health-start-period: must not be negative"),
    (["--health-retries", "-1", "busybox"],
     "invalid retries -1 for --health-retries: must be a non-negative integer"),
    (["--health-retries=-1", "busybox"], "invalid retries -1 for --health-retries"),
    (["--no-healthcheck", "--health-cmd", "true", "busybox"],
     "--no-healthcheck conflicts with --health-\\* options"),
    (["--no-healthcheck", "--health-interval", "1s", "busybox"], "conflicts"),
])
def test_bad_healthcheck_options_are_refused(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        create(argv)


def test_bad_healthcheck_options_are_refused_on_update() -> None:
    spec = create(["--health-cmd", "true", "busybox"])
    for argv in (["--health-interval", "-1s"], ["--health-retries", "-1"],
                 ["--no-healthcheck", "--health-cmd", "x"]):
        with pytest.raises(UsageError):
            update(spec, argv)


def test_a_dash_value_is_joined_only_for_health_flags_and_before_double_dash() -> None:
    assert rewrite_bool_assignments(["--health-timeout", "-1s", "img"]) == [
        "--health-timeout=-1s", "img"]
    assert rewrite_bool_assignments(["--health-timeout", "-x", "img"]) == [
        "--health-timeout", "-x", "img"]
    assert rewrite_bool_assignments(["--", "--health-timeout", "-1s"]) == [
        "--", "--health-timeout", "-1s"]


def test_no_healthcheck() -> None:
    assert list(create(["--no-healthcheck", "busybox"]).task.container.healthcheck.test) == ["NONE"]


# ------------------------------------------------------------- update spec ----

def base_spec() -> pb.ServiceSpec:
    return create(["--name", "web", "--replicas", "2", "-e", "A=1", "-e", "B=2", "-l", "k=v",
                   "--constraint", "node.role==worker", "-p", "8080:80", "-p", "9090:90",
                   "busybox", "sleep", "1000"])


def test_update_changes_a_copy() -> None:
    spec = base_spec()
    new = update(spec, ["--image", "busybox:2", "--replicas", "5", "--env-add", "A=9",
                        "--env-rm", "B", "--env-add", "C=3", "--label-add", "x=y",
                        "--label-rm", "k", "--args", "sleep 5", "--constraint-rm",
                        "node.role==worker", "--constraint-add", "node.labels.zone==a",
                        "--publish-rm", "90", "--publish-add", "8081:81", "--force",
                        "--update-delay", "2s", "--limit-memory", "1g"])
    c = new.task.container
    assert c.image == "busybox:2" and new.replicated.replicas == 5
    assert list(c.env) == ["A=9", "C=3"] and list(c.args) == ["sleep", "5"]
    assert new.annotations.labels == {"x": "y"}
    assert list(new.task.placement.constraints) == ["node.labels.zone==a"]
    assert sorted((p.published_port, p.target_port) for p in new.endpoint.ports) == [
        (8080, 80), (8081, 81)]
    assert new.task.force_update == 1 and new.update.delay.nanos == 2 * 10**9
    assert new.update.parallelism == 1  # untouched settings stay
    assert new.task.resources.limits.memory_bytes == 1 << 30
    assert spec.task.container.image == "busybox" and spec.replicated.replicas == 2


def test_update_publish_add_replaces_same_published_port() -> None:
    new = update(base_spec(), ["--publish-add", "8080:8000"])
    assert sorted((p.published_port, p.target_port) for p in new.endpoint.ports) == [
        (8080, 8000), (9090, 90)]


def test_update_validation() -> None:
    glob = create(["--mode", "global", "busybox"])
    with pytest.raises(UsageError, match="replicated mode"):
        update(glob, ["--replicas", "3"])
    with pytest.raises(UsageError, match="constraint"):
        update(base_spec(), ["--constraint-add", "zone=a"])
    with pytest.raises(UsageError, match="invalid replicas value -2"):
        update(base_spec(), ["--replicas", "-2"])


def test_update_secret_and_network_add_rm() -> None:
    spec = create(["--secret", "a", "--network", "front", "busybox"])
    new = update(spec, ["--secret-rm", "a", "--secret-add", "source=b,target=bee",
                        "--network-add", "name=back,alias=db", "--network-rm", "front"])
    assert [(s.secret_name, s.target) for s in new.task.container.secrets] == [("b", "bee")]
    assert [(n.target, list(n.aliases)) for n in new.task.networks] == [("back", ["db"])]


def test_secret_and_config_add_never_replace_another_at_the_same_target() -> None:
    spec = create(["--secret", "pw", "--config", "source=app,target=/etc/app", "busybox"])
    spec.task.container.secrets[0].secret_id = "id-of-pw"   # as the manager resolves it
    with pytest.raises(UsageError, match="secret 'other' would be mounted where secret 'pw'"):
        update(spec, ["--secret-add", "source=other,target=pw"])
    with pytest.raises(UsageError, match="--config-rm"):
        update(spec, ["--config-add", "source=app2,target=/etc/app"])
    assert [s.secret_name for s in spec.task.container.secrets] == ["pw"]   # untouched
    # the same secret again (by name or ID) updates its reference; rm then add swaps
    new = update(spec, ["--secret-add", "source=pw,target=pw,mode=0400"])
    assert [(s.secret_name, s.mode) for s in new.task.container.secrets] == [("pw", 0o400)]
    new = update(spec, ["--secret-add", "source=id-of-pw,target=pw,uid=7"])
    assert [(s.secret_name, s.uid) for s in new.task.container.secrets] == [("id-of-pw", 7)]
    new = update(spec, ["--secret-rm", "pw", "--secret-add", "source=other,target=pw",
                        "--config-rm", "app", "--config-add", "source=app2,target=/etc/app"])
    assert [(s.secret_name, s.target) for s in new.task.container.secrets] == [("other", "pw")]
    assert [(c.config_name, c.target) for c in new.task.container.configs] == \
        [("app2", "/etc/app")]


# --------------------------------------------------------------- templates ----

def test_tabulate_like_go_tabwriter() -> None:
    text = tabulate([["ID", "NAME", "MODE"], ["abc", "a-long-service-name", "global"]])
    name_width = len("a-long-service-name") + 3
    assert text.splitlines() == ["ID".ljust(10) + "NAME".ljust(name_width) + "MODE",
                                 "abc".ljust(10) + "a-long-service-name   global"]


ROWS = [{"ID": "abc", "Name": "web", "Mode": "replicated", "Replicas": "3/3",
         "Image": "nginx", "Ports": ""}]


def test_render_default_and_json() -> None:
    text = render(None, ROWS, fmt.SERVICE_FIELDS, fmt.SERVICE_FIELDS)
    assert text.splitlines()[0].split() == ["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"]
    line = render("json", ROWS, fmt.SERVICE_FIELDS, fmt.SERVICE_FIELDS)
    assert json.loads(line) == ROWS[0]
    assert line.startswith('{"ID":"abc","Image":"nginx"')


def test_render_templates() -> None:
    fields = fmt.SERVICE_FIELDS
    assert render("{{.Name}}: {{.Replicas}}", ROWS, fields, fields) == "web: 3/3"
    assert render("{{.Mode | upper}} {{lower .Name}}", ROWS, fields, fields) == "REPLICATED web"
    assert render("{{json .Name}}", ROWS, fields, fields) == '"web"'
    assert json.loads(render("{{json .}}", ROWS, fields, fields))["Replicas"] == "3/3"
    table = render("table {{.ID}}\\t{{.Name}}", ROWS, fields, fields).splitlines()
    assert table == ["ID        NAME", "abc       web"]
    with pytest.raises(UsageError, match='unknown field ".Nope"'):
        render("{{.Nope}}", ROWS, fields, fields)
    with pytest.raises(UsageError, match="unknown function"):
        render("{{frobnicate .Name}}", ROWS, fields, fields)


def test_template_truncate_and_literals() -> None:
    tpl = Template('{{truncate .ID 2}}{{"\\t"}}{{.Self}}', ("ID", "Self"))
    assert tpl.render({"ID": "abcdef", "Self": True}) == "ab\ttrue"


# ---------------------------------------------------------------- formats ----

def make_service(name: str = "web", replicas: int = 3, mode: str = "replicated",
                 sid: str = "s" * 25, spec_version: int = 1) -> pb.Service:
    svc = pb.Service(id=sid, spec_version=spec_version)
    svc.spec.annotations.name = name
    svc.spec.task.container.image = "nginx:1"
    if mode == "global":
        getattr(svc.spec, "global").SetInParent()
    else:
        svc.spec.replicated.replicas = replicas
    return svc


def make_task(svc: pb.Service, slot: int, state: int, desired: int = pb.RUNNING,
              node: str = "n1", tid: str = "", created: float = NOW - 10,
              spec_version: int | None = None, err: str = "") -> pb.Task:
    t = pb.Task(id=tid or f"t{slot}{state}{int(created)}".ljust(25, "x"), service_id=svc.id,
                slot=slot, node_id=node, service_name=svc.spec.annotations.name,
                desired_state=desired,
                spec_version=svc.spec_version if spec_version is None else spec_version)
    t.spec.CopyFrom(svc.spec.task)
    if spec_version is not None and spec_version != svc.spec_version:
        t.spec.container.image = "nginx:old"
    t.meta.created_at.CopyFrom(model.timestamp(created))
    t.status.state = state
    t.status.err = err
    t.status.timestamp.CopyFrom(model.timestamp(created + 5))
    return t


@pytest.mark.parametrize("seconds,text", [
    (0.3, "Less than a second"), (1, "1 second"), (5, "5 seconds"), (61, "About a minute"),
    (600, "10 minutes"), (3600, "About an hour"), (7200, "2 hours"), (3 * 86400, "3 days"),
    (20 * 86400, "2 weeks"), (90 * 86400, "3 months"), (800 * 86400, "2 years"),
])
def test_human_duration(seconds: float, text: str) -> None:
    assert fmt.human_duration(seconds) == text


def test_state_age() -> None:
    assert fmt.state_age(pb.RUNNING, NOW - 5, NOW) == "Running 5 seconds ago"
    assert fmt.state_age(pb.PREPARING, NOW - 0.2, NOW) == "Preparing less than a second ago"
    assert fmt.state_age(pb.SHUTDOWN, NOW - 4000, NOW) == "Shutdown about an hour ago"


def test_replicas_column() -> None:
    svc = make_service(replicas=3)
    tasks = [make_task(svc, 1, pb.RUNNING), make_task(svc, 2, pb.RUNNING, node="down"),
             make_task(svc, 3, pb.STARTING), make_task(svc, 1, pb.FAILED, desired=pb.SHUTDOWN)]
    assert fmt.service_row(svc, tasks)["Replicas"] == "2/3"
    assert fmt.service_row(svc, tasks, down_nodes=["down"])["Replicas"] == "1/3"
    svc.spec.task.placement.max_replicas = 1
    assert fmt.service_row(svc, tasks)["Replicas"] == "2/3 (max 1 per node)"
    glob = make_service(mode="global", sid="g" * 25)
    gtasks = [make_task(glob, 0, pb.RUNNING, node="a"), make_task(glob, 0, pb.PENDING, node="b")]
    row = fmt.service_row(glob, gtasks)
    assert (row["Mode"], row["Replicas"], row["ID"]) == ("global", "1/2", "g" * 12)


def test_task_rows_history_and_errors() -> None:
    svc = make_service(replicas=2)
    long_err = "task: non-zero exit (1): container failed to start properly"
    tasks = [make_task(svc, 1, pb.FAILED, desired=pb.SHUTDOWN, created=NOW - 100, err=long_err),
             make_task(svc, 2, pb.RUNNING, node="n2"),
             make_task(svc, 1, pb.RUNNING, created=NOW - 20)]
    rows = fmt.task_rows(tasks, {"n1": "node-1", "n2": "node-2"}, now=NOW)
    assert [r["Name"] for r in rows] == ["web.1", " \\_ web.1", "web.2"]
    assert rows[0]["CurrentState"] == "Running 15 seconds ago"
    assert rows[0]["Node"] == "node-1" and rows[0]["DesiredState"] == "Running"
    assert rows[1]["Error"] == '"task: non-zero exit (1): cont…"'
    assert len(rows[1]["Error"]) == fmt.MAX_ERR_LENGTH + 2
    assert rows[1]["DesiredState"] == "Shutdown" and len(rows[1]["ID"]) == 12
    full = fmt.task_rows(tasks, {}, now=NOW, trunc=False)
    assert full[1]["Error"] == f'"{long_err}"' and len(full[1]["ID"]) == 25
    table = render(None, rows, fmt.TASK_FIELDS, fmt.TASK_FIELDS).splitlines()
    assert table[0].startswith("ID             NAME")
    assert "DESIRED STATE" in table[0] and "CURRENT STATE" in table[0]


def test_pending_task_shows_scheduling_reason() -> None:
    svc = make_service(replicas=1)
    t = make_task(svc, 1, pb.PENDING)
    t.scheduling_message = "no suitable node"
    assert fmt.task_rows([t], {}, now=NOW)[0]["Error"] == '"no suitable node"'


def test_global_task_name_uses_node() -> None:
    glob = make_service(mode="global")
    t = make_task(glob, 0, pb.RUNNING, node="abcnode")
    assert fmt.task_base_name(t) == "web.abcnode"


def test_filter_tasks() -> None:
    svc = make_service(replicas=2)
    tasks = [make_task(svc, 1, pb.RUNNING), make_task(svc, 2, pb.SHUTDOWN, desired=pb.SHUTDOWN,
                                                       node="n2")]
    flt = parsing.parse_filters(["desired-state=running"], ("desired-state", "node", "name"))
    assert [t.slot for t in filter_tasks(tasks, flt, {})] == [1]
    flt = parsing.parse_filters(["node=node-2"], ("node",))
    assert [t.slot for t in filter_tasks(tasks, flt, {"n2": "node-2"})] == [2]
    flt = parsing.parse_filters(["desired-state=bogus"], ("desired-state",))
    with pytest.raises(UsageError, match="desired-state"):
        filter_tasks(tasks, flt, {})


def make_node(nid: str, host: str, role: int = pb.WORKER, leader: bool = False) -> pb.Node:
    n = pb.Node(id=nid, role=role)
    n.spec.SetInParent()
    n.description.hostname = host
    n.description.engine_version = "4.3.1"
    n.status.state = pb.NodeStatus.READY
    if role == pb.MANAGER:
        n.manager_status.leader = leader
        n.manager_status.reachability = pb.ManagerStatus.REACHABLE
    return n


def test_node_rows_and_table() -> None:
    nodes = [make_node("b" * 25, "wrk1"), make_node("a" * 25, "mgr1", pb.MANAGER, leader=True),
             make_node("c" * 25, "mgr2", pb.MANAGER)]
    nodes[0].spec.availability = pb.NodeSpec.DRAIN
    rows = [fmt.node_row(n, "a" * 25) for n in fmt.sort_nodes(nodes)]
    assert [r["ManagerStatus"] for r in rows] == ["Leader", "Reachable", ""]
    assert rows[2]["Availability"] == "Drain" and rows[0]["Status"] == "Ready"
    lines = fmt.node_table(rows).splitlines()
    assert lines[0].split() == ["ID", "HOSTNAME", "STATUS", "AVAILABILITY", "MANAGER", "STATUS",
                                "ENGINE", "VERSION"]
    assert lines[1].startswith("a" * 25 + " *") and "Leader" in lines[1]
    assert not lines[2].startswith("c" * 25 + " *")
    first = render("json", rows, fmt.NODE_COLUMNS, fmt.NODE_FIELDS).splitlines()[0]
    assert json.loads(first)["Self"] is True


def test_inspect_json_uses_enum_names() -> None:
    data = json.loads(fmt.inspect_json([make_node("a" * 25, "mgr1", pb.MANAGER)]))
    assert data[0]["role"] == "MANAGER" and data[0]["spec"]["availability"] == "ACTIVE"


def test_pretty_texts() -> None:
    svc = make_service()
    svc.spec.update.CopyFrom(specs.default_update_config())
    svc.spec.endpoint.ports.extend(parsing.parse_publish("8080:80"))
    text = pretty.service_text(svc)
    for expected in ("Name:", "Service Mode:", "Replicas:", "UpdateConfig:", "Parallelism:",
                     "Monitoring Period: 5s", "ContainerSpec:", "nginx:1", "PublishedPort = 8080"):
        assert expected in text
    node_text = pretty.node_text(make_node("a" * 25, "mgr1", pb.MANAGER, leader=True))
    assert "Hostname:" in node_text and "Leader:" in node_text and "Yes" in node_text
    info = cpb.InfoResponse(node_id="n", is_manager=True, cluster_id="c", managers=1, nodes=3)
    assert "Is Manager:" in pretty.info_text(info, "unix:///x", "0.1.0")
    info.autolock_managers = True
    info.cert_expiry.nanos = 90 * 24 * 3600 * 10**9
    lines = [line.split(":", 1) for line in
             pretty.info_text(info, "unix:///x", "0.1.0").splitlines() if ":" in line]
    fields = {key.strip(): value.strip() for key, value in lines}
    assert fields["Expiry Duration"] == "3 months"
    assert fields["Autolock Managers"] == "true"
    assert fields["Root Rotation In Progress"] == "false"
    assert pretty.info_fields(info, "h")["NodeCertExpiry"] == 90 * 24 * 3600 * 10**9


def test_log_line() -> None:
    msg = cpb.LogMessage(task_id="t" * 25, task_name="web.1", node_id="n1", data=b"hello",
                         timestamp=NOW)
    ns = argparse.Namespace(no_task_ids=False, no_trunc=False, timestamps=False)
    assert log_line(msg, {"n1": "node-1"}, ns) == "web.1." + "t" * 12 + "@node-1    | hello"
    ns = argparse.Namespace(no_task_ids=True, no_trunc=False, timestamps=True)
    assert log_line(msg, {}, ns) == "2023-11-14T22:13:20.000000000Z web.1@n1    | hello"


# ---------------------------------------------------------------- progress ----

def test_progress_replicated_converges() -> None:
    svc = make_service(replicas=3)
    tasks = [make_task(svc, s, pb.RUNNING) for s in (1, 2)] + [make_task(svc, 3, pb.PREPARING)]
    progress = compute_progress(svc, tasks)
    assert (progress.done, progress.total, progress.converged) == (2, 3, False)
    assert progress.header() == "overall progress: 2 out of 3 tasks"
    assert progress.lines[0].text(bar=True) == (
        "1/3: running   [" + "=" * 50 + ">]")
    assert progress.lines[2].text(bar=True).startswith("3/3: preparing [" + "=" * 33 + ">")
    assert progress.lines[2].text(bar=False) == "3/3: preparing"
    tasks[2].status.state = pb.RUNNING
    assert compute_progress(svc, tasks).converged


def test_progress_waits_for_new_spec_and_scale_down() -> None:
    svc = make_service(replicas=2, spec_version=2)
    old = [make_task(svc, s, pb.RUNNING, spec_version=1) for s in (1, 2)]
    assert not compute_progress(svc, old).converged
    scaled = make_service(replicas=1, spec_version=1)
    tasks = [make_task(scaled, s, pb.RUNNING) for s in (1, 2)]
    assert not compute_progress(scaled, tasks).converged  # slot 2 still wanted running
    tasks[1].desired_state = pb.SHUTDOWN
    assert compute_progress(scaled, tasks).converged


def test_progress_scale_keeps_tasks_of_an_equal_spec() -> None:
    svc = make_service(replicas=2, spec_version=1)
    tasks = [make_task(svc, s, pb.RUNNING) for s in (1, 2)]
    svc.spec_version = 5  # a version bump without a task spec change
    assert compute_progress(svc, tasks).converged


def test_progress_failures_and_global() -> None:
    svc = make_service(replicas=1)
    tasks = [make_task(svc, 1, pb.FAILED, err="exit 1", created=NOW - 30),
             make_task(svc, 1, pb.FAILED, err="exit 2", created=NOW - 20)]
    progress = compute_progress(svc, tasks)
    assert progress.failures == {"1/1": (2, "exit 2")}
    assert progress.lines[0].text(bar=True) == "1/1: exit 2"
    glob = make_service(mode="global")
    gtasks = [make_task(glob, 0, pb.RUNNING, node="a" * 25), make_task(glob, 0, pb.STARTING,
                                                                       node="b" * 25)]
    progress = compute_progress(glob, gtasks)
    assert (progress.done, progress.total) == (1, 2)
    assert progress.lines[0].label == "a" * 12
    assert not compute_progress(glob, []).converged
    assert compute_progress(glob, [], waited=10).converged


class FakeControl:
    """Answers GetService/ListTasks from a script of task lists."""

    def __init__(self, service: pb.Service, script: list[list[pb.Task]]) -> None:
        self.service = service
        self.script = script
        self.reads = 0

    def __call__(self, method: str, request, timeout=None):
        if method == "GetService":
            return cpb.GetServiceResponse(service=self.service)
        tasks = self.script[min(self.reads, len(self.script) - 1)]
        self.reads += 1
        return cpb.ListTasksResponse(tasks=tasks)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_waiter_plain_output() -> None:
    svc = make_service(replicas=2)
    script = [[make_task(svc, 1, pb.PREPARING)],
              [make_task(svc, 1, pb.RUNNING), make_task(svc, 2, pb.STARTING)],
              [make_task(svc, 1, pb.RUNNING), make_task(svc, 2, pb.RUNNING)]]
    out, clock = io.StringIO(), FakeClock()
    Waiter(FakeControl(svc, script), out, tty=False, clock=clock, sleep=clock.sleep).wait(svc.id)
    assert out.getvalue().splitlines() == [
        "overall progress: 0 out of 2 tasks", "1/2: preparing",
        "overall progress: 1 out of 2 tasks", "1/2: running", "2/2: starting",
        "overall progress: 2 out of 2 tasks", "2/2: running",
        "verify: Waiting 5 seconds to verify that tasks are stable...",
        f"verify: Service {svc.id} converged"]
    assert clock.now >= 5.0, "converged before the tasks were stable for the monitor period"


def test_waiter_starts_the_stability_window_over_when_a_task_changes() -> None:
    svc = make_service(replicas=1)
    svc.spec.update.monitor.nanos = 2 * 10**9
    first = make_task(svc, 1, pb.RUNNING, created=NOW - 10)
    failed = make_task(svc, 1, pb.FAILED, err="exit 1", created=NOW - 10)
    failed.id = first.id
    second = make_task(svc, 1, pb.RUNNING, created=NOW - 5)
    second.id = "t-second"
    # 1 s running, then the task fails and its replacement runs: 2 s more from there
    script = [[first]] * 10 + [[failed]] + [[failed, second]] * 40
    out, clock = io.StringIO(), FakeClock()
    Waiter(FakeControl(svc, script), out, tty=False, clock=clock, sleep=clock.sleep).wait(svc.id)
    lines = out.getvalue().splitlines()
    assert lines.count("verify: Waiting 2 seconds to verify that tasks are stable...") == 2, lines
    assert lines[-1] == f"verify: Service {svc.id} converged"
    assert clock.now >= 1.0 + 2.0, clock.now


def test_a_failure_message_carries_the_last_health_output() -> None:
    svc = make_service(replicas=2, spec_version=2)
    sick = make_task(svc, 1, pb.FAILED, err="unhealthy container")
    sick.status.health.status = "unhealthy"
    sick.status.health.log.add(exit_code=0, output="ok")
    sick.status.health.log.add(exit_code=1, output="curl: (7) Failed to connect\n  port 80\n")
    tasks = [sick, make_task(svc, 2, pb.RUNNING, spec_version=1)]
    why = f"update paused due to failure or early termination of task {sick.id}: unhealthy container"
    services = [with_status(svc, pb.UpdateStatus.PAUSED, why)]
    initial = pb.UpdateStatus(state=pb.UpdateStatus.UPDATING)
    out, clock = io.StringIO(), FakeClock()
    waiter = Waiter(ScriptedServices(services, [tasks]), out, False, clock=clock,
                    sleep=clock.sleep)
    with pytest.raises(Timeout) as caught:
        waiter.wait(svc.id, initial=initial)
    assert str(caught.value) == (
        f"{why} (last health check output: curl: (7) Failed to connect port 80)")


def test_waiter_tty_redraws_and_times_out() -> None:
    svc = make_service(replicas=1)
    failing = [make_task(svc, 1, pb.FAILED, err="image not found", created=NOW - i)
               for i in range(3)]
    out, clock = io.StringIO(), FakeClock()
    waiter = Waiter(FakeControl(svc, [failing]), out, tty=True, clock=clock, sleep=clock.sleep)
    with pytest.raises(Timeout, match="did not converge within 5s.*image not found"):
        waiter.wait(svc.id, timeout=5)
    text = out.getvalue()
    assert "\x1b[" in text and "task 1/1 has failed 3 times: image not found" in text


def test_deadline_grows_with_rolling_updates() -> None:
    svc = make_service(replicas=10)
    svc.spec.update.CopyFrom(specs.default_update_config())
    svc.spec.update.delay.nanos = 20 * 10**9
    assert deadline_for(svc) == 10 * (20 + 5 + 30)
    assert deadline_for(make_service(replicas=1)) == 120


# ------------------------------------------------------------ client, main ----

def test_targets() -> None:
    assert parse_target("unix:///var/run/s.sock").address == "unix:///var/run/s.sock"
    assert parse_target("/tmp/s.sock").is_unix
    assert parse_target("10.0.0.1:2377").address == "10.0.0.1:2377"
    assert parse_target("tcp://10.0.0.1:2377").address == "10.0.0.1:2377"
    with pytest.raises(CLIError, match="expected unix"):
        parse_target("nonsense")
    assert resolve_host(None, {"SWARM_HOST": "h:1"}) == "h:1"
    assert resolve_host("x:2", {"SWARM_HOST": "h:1"}) == "x:2"
    assert resolve_host(None, {}) == "unix:///var/lib/shoal/swarm.sock"


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


def test_describe_rpc_error() -> None:
    host = "unix:///var/lib/shoal/swarm.sock"
    unavailable = FakeRpcError(grpc.StatusCode.UNAVAILABLE,
                               "failed to connect to all addresses; No such file or directory")
    assert describe_rpc_error(unavailable, host) == (
        f"Cannot connect to the swarm node at {host}. "
        "Is the node running (swarm init / swarm daemon)?")
    no_leader = FakeRpcError(grpc.StatusCode.UNAVAILABLE, "The swarm does not have a leader.")
    assert describe_rpc_error(no_leader, host) == (
        "Error response from daemon: The swarm does not have a leader.")
    missing = FakeRpcError(grpc.StatusCode.NOT_FOUND, "No such service: web")
    assert describe_rpc_error(missing, host) == "Error: No such service: web"
    worker = FakeRpcError(grpc.StatusCode.FAILED_PRECONDITION,
                          "This node is not a swarm manager.")
    assert describe_rpc_error(worker, host).endswith("This node is not a swarm manager.")


def test_main_validates_before_connecting(capsys) -> None:
    host = ["-H", "unix:///nonexistent/dir/swarm.sock"]
    assert main([*host, "service", "create", "--replicas", "-1", "busybox"]) == 1
    assert "invalid replicas value -1" in capsys.readouterr().err
    assert main([*host, "service", "scale", "web"]) == 1
    assert "invalid scale specifier 'web'" in capsys.readouterr().err
    assert main([*host, "service", "ls", "--filter", "colour=red"]) == 1
    assert "invalid filter" in capsys.readouterr().err


def test_main_reports_unreachable_node(capsys) -> None:
    assert main(["-H", "unix:///nonexistent/dir/swarm.sock", "service", "ls"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == ("Cannot connect to the swarm node at unix:///nonexistent/dir/swarm.sock. "
                   "Is the node running (swarm init / swarm daemon)?")


def test_parser_has_node_starting_commands() -> None:
    ns = parse(["init", "--advertise-addr", "10.0.0.1", "--task-history-limit", "3",
                "--dispatcher-heartbeat", "2s", "--default-addr-pool", "10.20.0.0/16"])
    assert ns.bootstrap == "cmd_init" and ns.task_history_limit == 3
    assert ns.default_addr_pool == ["10.20.0.0/16"]
    assert parse(["daemon", "--data-dir", "/d", "--foreground"]).bootstrap == "cmd_daemon"


class ScriptedServices(FakeControl):
    """FakeControl whose service changes along a script too."""

    def __init__(self, services: list[pb.Service], script: list[list[pb.Task]]) -> None:
        super().__init__(services[0], script)
        self.services = services
        self.gets = 0

    def __call__(self, method: str, request, timeout=None):
        if method == "GetService":
            svc = self.services[min(self.gets, len(self.services) - 1)]
            self.gets += 1
            return cpb.GetServiceResponse(service=svc)
        return super().__call__(method, request, timeout)


def with_status(svc: pb.Service, state: int, message: str = "") -> pb.Service:
    copy = pb.Service()
    copy.CopyFrom(svc)
    copy.update_status.state = state
    copy.update_status.message = message
    return copy


def test_waiter_stops_on_paused_update() -> None:
    svc = make_service(replicas=1, spec_version=2)
    old = [make_task(svc, 1, pb.RUNNING, spec_version=1)]
    services = [with_status(svc, pb.UpdateStatus.UPDATING),
                with_status(svc, pb.UpdateStatus.PAUSED, "task web.1 failed")]
    out, clock = io.StringIO(), FakeClock()
    waiter = Waiter(ScriptedServices(services, [old]), out, False, clock=clock, sleep=clock.sleep)
    with pytest.raises(Timeout, match="update paused: task web.1 failed"):
        waiter.wait(svc.id)


def test_waiter_reports_automatic_rollback() -> None:
    svc = make_service(replicas=1, spec_version=3)
    tasks = [make_task(svc, 1, pb.RUNNING)]
    services = [with_status(svc, pb.UpdateStatus.UPDATING),
                with_status(svc, pb.UpdateStatus.ROLLBACK_COMPLETED, "update rolled back")]
    out, clock = io.StringIO(), FakeClock()
    waiter = Waiter(ScriptedServices(services, [[], tasks]), out, False, clock=clock,
                    sleep=clock.sleep)
    with pytest.raises(Timeout, match="service rolled back: update rolled back"):
        waiter.wait(svc.id)
    assert "rollback: update rolled back" in out.getvalue()
    assert "converged" in out.getvalue()


def test_waiter_waits_for_the_monitor_period() -> None:
    """Tasks all RUNNING but the update still watching them: not converged yet."""
    svc = make_service(replicas=1)
    tasks = [make_task(svc, 1, pb.RUNNING)]
    services = [with_status(svc, pb.UpdateStatus.UPDATING, "update in progress")] * 3 + [
        with_status(svc, pb.UpdateStatus.COMPLETED, "update completed")]
    out, clock = io.StringIO(), FakeClock()
    control = ScriptedServices(services, [tasks])
    Waiter(control, out, False, clock=clock, sleep=clock.sleep).wait(svc.id)
    assert control.gets == 4
    assert out.getvalue().splitlines()[-1] == f"verify: Service {svc.id} converged"


def test_waiter_sees_a_rollback_that_came_before_its_first_read() -> None:
    svc = make_service(replicas=1, spec_version=3)
    tasks = [make_task(svc, 1, pb.RUNNING)]
    why = ("update rolled back due to failure or early termination of task t1: "
           "unhealthy container")
    services = [with_status(svc, pb.UpdateStatus.ROLLBACK_COMPLETED, why)]
    initial = pb.UpdateStatus(state=pb.UpdateStatus.UPDATING, message="update in progress")
    out, clock = io.StringIO(), FakeClock()
    waiter = Waiter(ScriptedServices(services, [tasks]), out, False, clock=clock,
                    sleep=clock.sleep)
    with pytest.raises(Timeout, match="service rolled back: .*t1: unhealthy container"):
        waiter.wait(svc.id, initial=initial)
    assert f"rollback: {why}" in out.getvalue()


def test_waiter_reports_a_paused_update_with_the_task_error() -> None:
    svc = make_service(replicas=2, spec_version=2)
    tasks = [make_task(svc, 1, pb.FAILED, err="unhealthy container"),
             make_task(svc, 2, pb.RUNNING, spec_version=1)]
    why = "update paused due to failure or early termination of task t1: unhealthy container"
    services = [with_status(svc, pb.UpdateStatus.PAUSED, why)]
    initial = pb.UpdateStatus(state=pb.UpdateStatus.UPDATING)
    out, clock = io.StringIO(), FakeClock()
    waiter = Waiter(ScriptedServices(services, [tasks]), out, False, clock=clock,
                    sleep=clock.sleep)
    with pytest.raises(Timeout, match="^update paused due to .*t1: unhealthy container$"):
        waiter.wait(svc.id, initial=initial)


def test_a_manual_rollback_that_converges_succeeds() -> None:
    svc = make_service(replicas=1, spec_version=3)
    tasks = [make_task(svc, 1, pb.RUNNING)]
    services = [with_status(svc, pb.UpdateStatus.ROLLBACK_STARTED, "manually requested rollback"),
                with_status(svc, pb.UpdateStatus.ROLLBACK_COMPLETED, "rollback completed")]
    out, clock = io.StringIO(), FakeClock()
    waiter = Waiter(ScriptedServices(services, [tasks]), out, False, clock=clock,
                    sleep=clock.sleep)
    waiter.wait(svc.id, initial=services[0].update_status)
    assert "converged" in out.getvalue()


def test_rollback_takes_only_detach_and_quiet() -> None:
    assert rollback_conflicts(parse(["service", "update", "--rollback", "-d", "-q", "web"])) == []
    assert rollback_conflicts(parse(["service", "update", "--rollback", "--image", "x:2",
                                     "--env-add", "A=1", "web"])) == ["--env-add", "--image"]
    ns = parse(["service", "rollback", "-d", "web"])
    assert ns.handler.__name__ == "rollback" and ns.service == "web" and ns.detach == "true"


def test_rollback_ignores_no_op_flags_set_to_false() -> None:
    for flag in ("--with-registry-auth", "--no-resolve-image", "--force"):
        off = parse(["service", "update", "--rollback", f"{flag}=false", "web"])
        assert rollback_conflicts(off) == [], flag
        on = parse(["service", "update", "--rollback", f"{flag}=true", "web"])
        assert rollback_conflicts(on) == [flag], flag
        assert rollback_conflicts(parse(["service", "update", "--rollback", flag, "web"])) \
            == [flag]
    assert rollback_conflicts(parse(["service", "update", "--rollback", "--tty=false",
                                     "web"])) == ["--tty"]     # sets the spec: a change


def test_main_refuses_rollback_with_other_flags(capsys) -> None:
    host = ["-H", "unix:///nonexistent/dir/swarm.sock"]
    assert main([*host, "service", "update", "--rollback", "--replicas", "2", "web"]) == 1
    assert capsys.readouterr().err.strip() == (
        "Error: other flags may not be combined with --rollback: --replicas")


def test_label_filter_values() -> None:
    labels = {"team": "db", "tier": ""}
    assert parsing.label_matches(labels, "team")
    assert parsing.label_matches(labels, "team=db")
    assert not parsing.label_matches(labels, "team=web")
    assert parsing.label_matches(labels, "tier=")
    assert not parsing.label_matches(labels, "zone")


class TwoServices:
    """GetService/ListTasks for two services; each ListTasks answer comes from that
    service's script (the last entry repeats)."""

    def __init__(self, services: list[pb.Service], scripts: dict[str, list[list[pb.Task]]]):
        self.services = {s.id: s for s in services}
        self.scripts = scripts
        self.reads: dict[str, int] = {}

    def __call__(self, method: str, request, timeout=None):
        if method == "GetService":
            return cpb.GetServiceResponse(service=self.services[request.service_id])
        sid = request.filters.service_ids[0]
        count = self.reads.get(sid, 0)
        self.reads[sid] = count + 1
        script = self.scripts[sid]
        return cpb.ListTasksResponse(tasks=script[min(count, len(script) - 1)])


def test_several_services_are_verified_stable_together() -> None:
    """One window for all (the longest monitor), started over when any service's
    running tasks change; not one window per service in turn."""
    a, b = make_service(replicas=1), make_service(replicas=1)
    a.id, b.id = "svc-a", "svc-b"
    a.spec.update.monitor.nanos = 2 * 10**9
    b.spec.update.monitor.nanos = 3 * 10**9
    ta, tb = make_task(a, 1, pb.RUNNING), make_task(b, 1, pb.RUNNING, tid="tb-first")
    tb2 = make_task(b, 1, pb.RUNNING, tid="tb-second")
    scripts = {"svc-a": [[ta]], "svc-b": [[tb]] * 10 + [[tb2]]}
    out, clock = io.StringIO(), FakeClock()
    waiter = Waiter(TwoServices([a, b], scripts), out, False, clock=clock, sleep=clock.sleep)
    waiter.verify_stable({"svc-a": "a", "svc-b": "b"})
    assert out.getvalue().splitlines() == [
        "verify: Waiting 3 seconds to verify that tasks are stable..."]
    # b's task changed after 1 s: 3 s from there, not 3 s per service
    assert 4.0 <= clock.now < 4.5, clock.now


def test_verify_stable_names_the_service_that_keeps_changing() -> None:
    a = make_service(replicas=1)
    a.id = "svc-a"
    flapping = [[make_task(a, 1, pb.RUNNING, tid=f"t{i}")] for i in range(2000)]
    out, clock = io.StringIO(), FakeClock()
    waiter = Waiter(TwoServices([a], {"svc-a": flapping}), out, False, clock=clock,
                    sleep=clock.sleep)
    with pytest.raises(Timeout, match="the tasks of web did not stay running"):
        waiter.verify_stable({"svc-a": "web"}, timeout=10)
