"""The compose converter (cli/compose/convert.py): a loaded stack to a StackDefinition.

Names, labels, the default network, externals, secret and config data, and
each service key in the ServiceSpec field `swarm service create` fills (the
same compose service and `service create` command give the same spec).
"""
from __future__ import annotations

import argparse
from typing import Any, Mapping, Optional

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cli import specs
from cli.compose.convert import IMAGE_LABEL, NAMESPACE_LABEL, check_stack_name, convert
from cli.compose.errors import ComposeError
from cli.flags import rewrite_bool_assignments
from cli.main import build_parser
from manager import validation
from proto import objects_pb2 as pb
from tests.compose_helpers import ATSEA, WORKDIR, load_texts, service
from tests.test_compose_fuzz import FUZZ, dump

NS = {NAMESPACE_LABEL: "app"}


def reader_of(files: Optional[Mapping[str, bytes]] = None):
    stored = dict(files or {})

    def read(path: str) -> bytes:
        if path not in stored:
            raise FileNotFoundError(2, "No such file or directory", path)
        return stored[path]
    return read


def definition(*texts: str, files: Optional[Mapping[str, bytes]] = None,
               name: str = "app") -> pb.StackDefinition:
    return convert(load_texts(*texts).stack, name, reader_of(files))


def svc(d: pb.StackDefinition, name: str) -> pb.ServiceSpec:
    (found,) = [s for s in d.services if s.annotations.name == name]
    return found


def refused(*texts: str, files: Optional[Mapping[str, bytes]] = None) -> ComposeError:
    with pytest.raises(ComposeError) as info:
        definition(*texts, files=files)
    return info.value


def created(argv: list[str]) -> pb.ServiceSpec:
    parser = build_parser()
    ns: argparse.Namespace = parser.parse_args(
        rewrite_bool_assignments(["service", "create", *argv]))
    return specs.create_spec(ns)


# ------------------------------------------------------------------ names ----

def test_objects_are_named_after_the_stack_unless_named_or_external() -> None:
    d = definition("""\
services:
  web:
    image: nginx:1
    networks: [front, back, outside]
    secrets: [token, shared]
    configs: [conf]
networks:
  front:
  back:
    name: plain-back
  outside:
    external: true
    name: corp-net
secrets:
  token: {file: ./token}
  shared: {external: true}
configs:
  conf: {file: ./conf, name: app-conf-v2}
""", files={f"{WORKDIR}/token": b"t0k", f"{WORKDIR}/conf": b"c"})
    assert [s.annotations.name for s in d.services] == ["app_web"]
    assert [n.annotations.name for n in d.networks] == ["app_front", "plain-back"]
    assert list(d.external_networks) == ["corp-net"]
    assert [s.annotations.name for s in d.secrets] == ["app_token"]
    assert list(d.external_secrets) == ["shared"]
    assert [c.annotations.name for c in d.configs] == ["app-conf-v2"]
    assert list(d.external_configs) == []
    web = d.services[0]
    assert [n.target for n in web.task.networks] == ["app_front", "corp-net", "plain-back"]
    assert [r.secret_name for r in web.task.container.secrets] == ["app_token", "shared"]
    assert [r.config_name for r in web.task.container.configs] == ["app-conf-v2"]


def test_every_object_carries_the_namespace_label() -> None:
    d = definition("""\
services:
  web:
    image: nginx:1.25
    labels: {tier: web}
    deploy:
      labels: {team: a}
    volumes: [data:/data]
    secrets: [s]
    configs: [c]
networks:
  default:
    labels: {zone: z}
volumes:
  data:
    labels: {keep: "yes"}
secrets:
  s: {file: ./s, labels: {kind: key}}
configs:
  c: {file: ./c}
""", files={f"{WORKDIR}/s": b"1", f"{WORKDIR}/c": b"2"})
    web = d.services[0]
    assert dict(web.annotations.labels) == {"team": "a", **NS, IMAGE_LABEL: "nginx:1.25"}
    assert dict(web.task.container.labels) == {"tier": "web", **NS}
    assert dict(d.networks[0].annotations.labels) == {"zone": "z", **NS}
    assert dict(d.secrets[0].annotations.labels) == {"kind": "key", **NS}
    assert dict(d.configs[0].annotations.labels) == NS
    assert dict(web.task.container.mounts[0].volume_options.labels) == {"keep": "yes", **NS}


def test_a_service_without_networks_joins_the_default_network() -> None:
    d = definition("""\
services:
  web: {image: nginx:1}
  db:
    image: redis:7
    networks: [back]
networks:
  back:
  unused:
""")
    assert [n.annotations.name for n in d.networks] == ["app_back", "app_default"]
    default = d.networks[1]
    assert default.driver == "overlay" and not default.attachable
    web = svc(d, "app_web")
    assert [(n.target, list(n.aliases)) for n in web.task.networks] == [("app_default", ["web"])]
    db = svc(d, "app_db")
    assert [(n.target, list(n.aliases)) for n in db.task.networks] == [("app_back", ["db"])]


def test_no_default_network_when_every_service_names_its_networks() -> None:
    d = definition(service("    networks:\n      front:\n        aliases: [www, web]\n")
                   + "networks:\n  front:\n")
    assert [n.annotations.name for n in d.networks] == ["app_front"]
    assert list(d.services[0].task.networks[0].aliases) == ["www", "web"]


def test_the_default_network_can_be_an_external_one() -> None:
    d = definition(service("") + "networks:\n  default:\n    external: true\n"
                   "    name: corp-net\n")
    assert not d.networks and list(d.external_networks) == ["corp-net"]
    assert [(n.target, list(n.aliases)) for n in d.services[0].task.networks] == [
        ("corp-net", ["web"])]


def test_network_options() -> None:
    d = definition(service("    networks: [secure]\n") + """\
networks:
  secure:
    driver: overlay
    driver_opts: {encrypted: "yes"}
    internal: true
    ipam:
      config:
        - subnet: 10.9.0.0/24
""")
    (net,) = d.networks
    assert net.driver == "overlay" and not net.attachable and net.internal and not net.ingress
    assert dict(net.driver_options) == {"encrypted": "yes"}
    assert [c.subnet for c in net.ipam] == ["10.9.0.0/24"]


def test_only_the_externals_services_use_are_listed() -> None:
    d = definition("""\
services:
  web:
    image: nginx:1
    networks: [ext]
    secrets: [used]
    configs: [c_used]
networks:
  ext: {external: true}
  ext_unused: {external: true}
secrets:
  used: {external: true, name: real-secret}
  unused: {external: true}
configs:
  c_used: {external: true}
  c_unused: {external: true}
""")
    assert list(d.external_networks) == ["ext"]
    assert list(d.external_secrets) == ["real-secret"]
    assert list(d.external_configs) == ["c_used"]
    assert not d.networks and not d.secrets and not d.configs


def test_stack_names() -> None:
    assert check_stack_name("seastack") == "seastack"
    for bad in ("", "  ", '""', "my stack", "-x", "a/b"):
        with pytest.raises(ComposeError, match="invalid stack name"):
            check_stack_name(bad)
    with pytest.raises(ComposeError, match="longer than 63"):
        definition(service(""), name="s" * 60)


# ---------------------------------------------------------- secrets, configs ----

def test_secret_and_config_files_are_read_as_bytes() -> None:
    d = definition(service("    secrets: [key]\n    configs: [conf]\n") + """\
secrets:
  key: {file: ./certs/key.pem}
configs:
  conf: {file: /etc/app.conf}
""", files={f"{WORKDIR}/certs/key.pem": b"\x00\xffbinary", "/etc/app.conf": b"a=1\n"})
    assert d.secrets[0].data == b"\x00\xffbinary"
    assert d.configs[0].data == b"a=1\n"


def test_an_unreadable_secret_file_names_the_key() -> None:
    err = refused(service("    secrets: [key]\n") + "secrets:\n  key: {file: ./missing}\n")
    assert err.path == "secrets.key.file"
    assert f'cannot read secret file "{WORKDIR}/missing": No such file or directory' in str(err)


def test_file_reference_defaults_and_long_form() -> None:
    d = definition(service("""\
    secrets:
      - token
      - source: token
        target: other_name
        uid: "100"
        gid: "101"
        mode: 0400
    configs:
      - conf
      - source: conf
        target: etc/app.conf
      - source: conf
        target: /srv/app.conf
        mode: 0440
""") + """\
secrets:
  token: {file: ./t}
configs:
  conf: {file: ./c}
""", files={f"{WORKDIR}/t": b"t", f"{WORKDIR}/c": b"c"})
    c = d.services[0].task.container
    assert [(r.secret_name, r.target, r.uid, r.gid, r.mode) for r in c.secrets] == [
        ("app_token", "other_name", 100, 101, 0o400), ("app_token", "token", 0, 0, 0o444)]
    assert [(r.config_name, r.target, r.mode) for r in c.configs] == [
        ("app_conf", "/conf", 0o444), ("app_conf", "/etc/app.conf", 0o444),
        ("app_conf", "/srv/app.conf", 0o440)]


# --------------------------------------------------------------- services ----

FULL = """\
services:
  web:
    image: registry:5000/team/web:2
    command: ["serve", "--port", "80"]
    entrypoint: /entry.sh -v
    environment:
      B: "2"
      A: "1"
      EMPTY:
    hostname: web-host
    user: "1000:1000"
    working_dir: /srv
    init: true
    read_only: true
    tty: true
    stop_signal: SIGQUIT
    stop_grace_period: 30s
    dns: [10.0.0.2]
    dns_search: [example.org]
    dns_opt: [ndots:2]
    group_add: [audio, "44"]
    extra_hosts: ["db:10.0.0.5", "v6:fe80::1"]
    cap_add: [net_admin]
    cap_drop: [ALL]
    sysctls: {net.core.somaxconn: "1024"}
    ulimits:
      nproc: 65535
      nofile: {soft: 1024, hard: 2048}
    tmpfs: [/run]
    ports:
      - "8080:80"
      - target: 53
        published: 5353
        protocol: udp
        mode: host
    volumes:
      - /srv/data:/data:ro,rshared
      - type: tmpfs
        target: /cache
        tmpfs: {size: 64m, mode: 0700}
      - /anon
    healthcheck:
      test: curl -f http://localhost
      interval: 10s
      timeout: 2s
      retries: 4
      start_period: 20s
      start_interval: 1s
    logging:
      driver: json-file
      options: {max-size: 10m, max-file: "1"}
    deploy:
      mode: replicated
      replicas: 3
      endpoint_mode: vip
      resources:
        limits: {cpus: "1.5", memory: 512M}
        reservations: {cpus: "0.25", memory: 128M}
      restart_policy:
        condition: on-failure
        delay: 3s
        max_attempts: 5
        window: 1m
      placement:
        constraints: [node.role==worker]
        preferences: [{spread: node.labels.zone}]
        max_replicas_per_node: 2
      update_config:
        parallelism: 2
        delay: 5s
        failure_action: rollback
        monitor: 30s
        max_failure_ratio: 0.25
        order: start-first
      rollback_config:
        parallelism: 0
        failure_action: continue
        order: stop-first
"""

FULL_AS_CREATE = [
    "--replicas", "3", "--entrypoint", "/entry.sh -v", "-e", "B=2", "-e", "A=1", "-e", "EMPTY",
    "--log-driver", "json-file", "--log-opt", "max-size=10m", "--log-opt", "max-file=1",
    "--hostname", "web-host", "--user", "1000:1000", "--workdir", "/srv", "--init",
    "--read-only", "--tty", "--stop-signal", "SIGQUIT", "--stop-grace-period", "30s",
    "--dns", "10.0.0.2", "--dns-search", "example.org", "--dns-option", "ndots:2",
    "--group", "audio", "--group", "44", "--host", "db:10.0.0.5", "--host", "v6:fe80::1",
    "--cap-add", "net_admin", "--cap-drop", "ALL", "--sysctl", "net.core.somaxconn=1024",
    "--ulimit", "nofile=1024:2048", "--ulimit", "nproc=65535",
    "--publish", "8080:80", "--publish", "published=5353,target=53,protocol=udp,mode=host",
    "--mount", "type=bind,source=/srv/data,target=/data,readonly,bind-propagation=rshared",
    "--mount", "type=tmpfs,target=/cache,tmpfs-size=64m,tmpfs-mode=0700",
    "--mount", "type=volume,target=/anon",
    "--mount", "type=tmpfs,target=/run",
    "--health-cmd", "curl -f http://localhost", "--health-interval", "10s",
    "--health-timeout", "2s", "--health-retries", "4", "--health-start-period", "20s",
    "--health-start-interval", "1s", "--endpoint-mode", "vip",
    "--limit-cpu", "1.5", "--limit-memory", "512M", "--reserve-cpu", "0.25",
    "--reserve-memory", "128M", "--restart-condition", "on-failure", "--restart-delay", "3s",
    "--restart-max-attempts", "5", "--restart-window", "1m",
    "--constraint", "node.role==worker", "--placement-pref", "spread=node.labels.zone",
    "--replicas-max-per-node", "2",
    "--update-parallelism", "2", "--update-delay", "5s", "--update-failure-action", "rollback",
    "--update-monitor", "30s", "--update-max-failure-ratio", "0.25",
    "--update-order", "start-first",
    "--rollback-parallelism", "0", "--rollback-failure-action", "continue",
    "--rollback-order", "stop-first",
    "registry:5000/team/web:2", "serve", "--port", "80",
]


def test_every_service_key_lands_where_service_create_puts_it(monkeypatch) -> None:
    monkeypatch.delenv("EMPTY", raising=False)
    converted = definition(FULL).services[0]
    expected = stackify(created(FULL_AS_CREATE), "web", "registry:5000/team/web:2")
    # a stack sorts what Docker's converter sorts (env, ports), so a redeploy is stable
    env = sorted(expected.task.container.env)
    del expected.task.container.env[:]
    expected.task.container.env.extend(env)
    ports = sorted(expected.endpoint.ports, key=lambda p: p.published_port)
    del expected.endpoint.ports[:]
    expected.endpoint.ports.extend(ports)
    assert converted == expected, (converted, expected)


def stackify(spec: pb.ServiceSpec, key: str, image: str) -> pb.ServiceSpec:
    """A `service create` spec with what a stack adds: its name, its labels, the default
    network."""
    spec.annotations.name = f"app_{key}"
    spec.annotations.labels.update({**NS, IMAGE_LABEL: image})
    spec.task.container.labels.update(NS)
    spec.task.networks.add(target="app_default", aliases=[key])
    return spec


def test_defaults_are_service_creates() -> None:
    converted = definition(service("")).services[0]
    expected = stackify(created(["nginx:1"]), "web", "nginx:1")
    assert converted == expected
    assert converted.replicated.replicas == 1
    assert converted.update == specs.default_update_config()
    assert converted.rollback == specs.default_update_config()


@pytest.mark.parametrize("mode,field", [("global", "global"), ("global-job", "global_job"),
                                        ("replicated-job", "replicated_job")])
def test_modes(mode: str, field: str) -> None:
    replicas = "      replicas: 4\n" if mode == "replicated-job" else ""
    spec = definition(service(f"    deploy:\n      mode: {mode}\n{replicas}")).services[0]
    assert spec.WhichOneof("mode") == field
    if mode == "replicated-job":
        assert spec.replicated_job.total_completions == 4
    if mode.endswith("job"):
        assert spec.task.restart.condition == pb.RestartPolicy.ON_FAILURE
    expected = stackify(created(["--mode", mode, *(["--replicas", "4"] if replicas else []),
                                 "nginx:1"]), "web", "nginx:1")
    assert spec == expected


def test_job_modes_take_no_update_config() -> None:
    err = refused(service("    deploy:\n      mode: replicated-job\n"
                          "      update_config: {parallelism: 2}\n"))
    assert err.path == "services.web.deploy.update_config"
    assert "cannot be used with job modes" in str(err)


def test_max_replicas_per_node_needs_replicated_mode() -> None:
    err = refused(service("    deploy:\n      mode: global\n"
                          "      placement: {max_replicas_per_node: 1}\n"))
    assert err.path == "services.web.deploy.placement.max_replicas_per_node"


def test_healthcheck_disable() -> None:
    for body in ("    healthcheck: {disable: true}\n", "    healthcheck: {test: [NONE]}\n"):
        spec = definition(service(body)).services[0]
        assert list(spec.task.container.healthcheck.test) == ["NONE"]
        assert spec.task.container.healthcheck == created(["--no-healthcheck", "nginx:1"]
                                                          ).task.container.healthcheck


def test_named_volumes_take_the_stack_prefix_and_the_volume_options() -> None:
    d = definition(service("""\
    volumes:
      - data:/data
      - type: volume
        source: named
        target: /named
        volume: {nocopy: true}
      - ext:/ext:ro
""") + """\
volumes:
  data:
    driver: local
    driver_opts: {type: tmpfs, device: tmpfs}
  named:
    name: shared-name
  ext:
    external: true
""")
    data, named, ext = d.services[0].task.container.mounts
    assert (data.type, data.source, data.target) == (pb.Mount.VOLUME, "app_data", "/data")
    assert data.volume_options.driver == "local"
    assert dict(data.volume_options.driver_options) == {"type": "tmpfs", "device": "tmpfs"}
    assert (named.source, named.volume_options.no_copy) == ("shared-name", True)
    assert dict(named.volume_options.labels) == NS
    assert (ext.source, ext.read_only) == ("ext", True)
    assert not ext.HasField("volume_options")


def test_two_mounts_at_one_target_are_refused() -> None:
    err = refused(service("    volumes: [/a:/data]\n    tmpfs: [/data/]\n"))
    assert err.path == "services.web.tmpfs[0]"
    assert "duplicate mount point: /data/" in str(err)


def test_mount_rules_apply() -> None:
    err = refused(service("    volumes: ['/:/']\n"))
    assert err.path == "services.web.volumes[0]" and "destination can't be '/'" in str(err)


def test_conversion_is_deterministic_whatever_the_key_order() -> None:
    one = """\
services:
  b: {image: "x:1", networks: [n2, n1], environment: {Z: "1", A: "2"}, ports: ["90:9", "80:8"]}
  a: {image: "y:1"}
networks: {n1: {}, n2: {}}
"""
    two = """\
networks: {n2: {}, n1: {}}
services:
  a: {image: "y:1"}
  b: {image: "x:1", ports: ["80:8", "90:9"], environment: {A: "2", Z: "1"}, networks: [n1, n2]}
"""
    first, second = definition(one), definition(two)
    assert first.SerializeToString(deterministic=True) == second.SerializeToString(
        deterministic=True)
    assert [s.annotations.name for s in first.services] == ["app_a", "app_b"]


# ------------------------------------------------------------------ AtSea ----

def test_atsea_converts() -> None:
    d = definition(ATSEA, name="atsea")
    assert d.name == "atsea"
    assert [s.annotations.name for s in d.services] == [
        "atsea_appserver", "atsea_database", "atsea_payment_gateway", "atsea_reverse_proxy",
        "atsea_visualizer"]
    assert [n.annotations.name for n in d.networks] == [
        "atsea_back-tier", "atsea_default", "atsea_front-tier", "atsea_payment"]
    assert all(n.driver == "overlay" for n in d.networks)
    encrypted = [n.annotations.name for n in d.networks if "encrypted" in n.driver_options]
    assert encrypted == ["atsea_payment"]
    assert not d.secrets and list(d.external_secrets) == [
        "postgres_password", "revprox_cert", "revprox_key", "staging_token"]
    assert not d.external_networks

    gateway = svc(d, "atsea_payment_gateway")
    assert [(r.secret_name, r.target) for r in gateway.task.container.secrets] == [
        ("staging_token", "payment_token")]
    assert list(gateway.task.placement.constraints) == ["node.role == worker",
                                                        "node.labels.pcidss == yes"]
    assert gateway.update.failure_action == pb.UpdateConfig.ROLLBACK
    assert gateway.update.parallelism == 1
    assert [n.target for n in gateway.task.networks] == ["atsea_payment"]

    app = svc(d, "atsea_appserver")
    assert app.replicated.replicas == 2
    assert app.update.parallelism == 2
    assert [n.target for n in app.task.networks] == [
        "atsea_back-tier", "atsea_front-tier", "atsea_payment"]
    assert all(list(n.aliases) == ["appserver"] for n in app.task.networks)
    assert app.task.restart.condition == pb.RestartPolicy.ON_FAILURE
    assert (app.task.restart.delay.nanos, app.task.restart.max_attempts,
            app.task.restart.window.nanos) == (5 * 10**9, 3, 120 * 10**9)

    proxy = svc(d, "atsea_reverse_proxy")
    assert [(p.published_port, p.target_port) for p in proxy.endpoint.ports] == [
        (80, 80), (443, 443)]
    assert [(r.secret_name, r.target) for r in proxy.task.container.secrets] == [
        ("revprox_cert", "revprox_cert"), ("revprox_key", "revprox_key")]

    viz = svc(d, "atsea_visualizer")
    assert [n.target for n in viz.task.networks] == ["atsea_default"]
    assert list(viz.task.placement.constraints) == ["node.role == manager"]
    assert viz.task.container.stop_grace_period.nanos == 90 * 10**9
    (sock,) = viz.task.container.mounts
    assert (sock.type, sock.source, sock.target) == (pb.Mount.BIND, "/var/run/docker.sock",
                                                     "/var/run/docker.sock")
    assert [(p.published_port, p.target_port) for p in viz.endpoint.ports] == [(8001, 8080)]

    db = svc(d, "atsea_database")
    assert list(db.task.container.env) == [
        "POSTGRES_DB=atsea", "POSTGRES_DB_PASSWORD_FILE=/run/secrets/postgres_password",
        "POSTGRES_USER=gordonuser"]
    for spec in d.services:
        assert spec.annotations.labels[NAMESPACE_LABEL] == "atsea"
        assert spec.annotations.labels[IMAGE_LABEL] == spec.task.container.image


def test_dnsrr_takes_no_ingress_port() -> None:
    err = refused(service("    ports: ['80:80']\n    deploy: {endpoint_mode: dnsrr}\n"))
    assert err.path == "services.web.ports" and "mode: host" in str(err)
    spec = definition(service("    ports: [{target: 80, published: 80, mode: host}]\n"
                              "    deploy: {endpoint_mode: dnsrr}\n")).services[0]
    assert spec.endpoint.mode == pb.EndpointSpec.DNSRR


# ------------------------------------------------------------------- fuzz ----

# Valid values of each service key (and deploy sections to combine): random services made
# of them reach every branch of the converter.
VALID: dict[str, list[Any]] = {
    "command": ["serve --port 80", ["a", "b"], ""],
    "entrypoint": ["/e.sh -x", []],
    "environment": [{"A": "1", "B": None}, ["A=1", "B"]],
    "hostname": ["h"], "user": ["0:0"], "working_dir": ["/w"], "init": [True, False],
    "read_only": [True], "tty": [True], "stop_signal": ["SIGINT"],
    "stop_grace_period": ["1s", "0s"], "dns": ["10.0.0.1", ["1.1.1.1"]],
    "dns_search": ["x.org"], "dns_opt": [["ndots:1"]], "group_add": [["audio", 44]],
    "extra_hosts": [["a:1.2.3.4"], {"b": "::1"}], "cap_add": [["NET_ADMIN"], ["ALL"]],
    "cap_drop": [["ALL"], ["chown"]],
    "sysctls": [{"net.core.somaxconn": 10}, ["net.ipv4.ip_forward=1"]],
    "ulimits": [{"nofile": 10}, {"nproc": {"soft": 1, "hard": 2}}],
    "tmpfs": ["/t", ["/t1", "/t2"]],
    "ports": [["80"], ["8080:80/udp"], [{"target": 80, "mode": "host"}],
              ["9000-9001:90-91"]],
    "networks": [["front"], {"front": {"aliases": ["x"]}}, ["default", "front"], ["ext"]],
    "secrets": [["s"], [{"source": "s", "target": "/x/y", "mode": 0o400, "uid": "1"}],
                ["ext_s"]],
    "configs": [["c"], [{"source": "c", "target": "rel/c"}]],
    "volumes": [["data:/d"], ["/h:/c:ro"], ["named:/n:nocopy"],
                [{"type": "tmpfs", "target": "/tm", "tmpfs": {"size": 1000}}], ["/anon"]],
    "healthcheck": [{"test": "true"}, {"disable": True}, {"interval": "1s"},
                    {"test": ["CMD", "x"], "retries": 2}],
    "logging": [{"driver": "local", "options": {"max-size": "1m"}}],
    "labels": [{"a": "b"}, ["c=d"]],
    "deploy": [{"mode": "global"}, {"mode": "replicated-job", "replicas": 3},
               {"mode": "global-job"}, {"replicas": 0}, {"endpoint_mode": "dnsrr"},
               {"resources": {"limits": {"cpus": "0.5", "memory": "10M"},
                              "reservations": {"memory": "1M"}}},
               {"restart_policy": {"condition": "none", "delay": "1s", "window": "1m"}},
               {"placement": {"constraints": ["node.role==manager"],
                              "preferences": [{"spread": "node.labels.z"}],
                              "max_replicas_per_node": 2}},
               {"update_config": {"parallelism": 0, "order": "start-first",
                                  "failure_action": "rollback"}},
               {"rollback_config": {"monitor": "1s"}}, {"labels": {"x": "y"}}],
}
PAIRS = [(key, value) for key, values in VALID.items() for value in values]
TOP = {"networks": {"front": {"driver_opts": {"encrypted": ""}}, "ext": {"external": True}},
       "volumes": {"data": {"labels": {"l": "v"}}, "named": {"name": "shared"}},
       "secrets": {"s": {"file": "s.txt"}, "ext_s": {"external": True}},
       "configs": {"c": {"file": "c.txt"}}}
FUZZ_FILES = {"/stacks/app/s.txt": b"secret", "/stacks/app/c.txt": b"conf"}


def random_service(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    body: dict[str, Any] = {"image": "nginx:1"}
    for key, value in pairs:
        if key == "deploy":
            body.setdefault("deploy", {}).update(value)
        else:
            body[key] = value
    return body


@FUZZ
@given(st.lists(st.lists(st.sampled_from(PAIRS), max_size=8), min_size=1, max_size=3))
def test_what_the_loader_accepts_converts_to_specs_the_manager_accepts(
        services: list[list[tuple[str, Any]]]) -> None:
    """A stack the loader accepts converts (or is refused with a ComposeError), the same
    every time, and each service spec passes the manager's own checks."""
    document = {"services": {f"s{i}": random_service(pairs) for i, pairs in enumerate(services)},
                **TOP}
    text = dump(document)
    try:
        loaded = load_texts(text, files={p: d.decode() for p, d in FUZZ_FILES.items()})
    except ComposeError:
        return
    try:
        converted = convert(loaded.stack, "app", reader_of(FUZZ_FILES))
    except ComposeError as exc:
        assert exc.message
        return
    again = convert(load_texts(text, files={p: d.decode() for p, d in FUZZ_FILES.items()}
                               ).stack, "app", reader_of(FUZZ_FILES))
    assert again == converted
    assert len(converted.services) == len(services)
    for spec in converted.services:
        assert spec.annotations.labels[NAMESPACE_LABEL] == "app"
        assert spec.task.networks, "every service is on a network"
        validation.normalise_service_spec(spec)
        validation.check_service_spec(spec)


def test_the_local_log_driver_gets_docker_s_file_limit() -> None:
    d = definition("""
services:
  web:
    image: nginx
    logging:
      driver: local
  api:
    image: nginx
    logging:
      driver: local
      options: {max-size: 2m}
""")
    assert dict(svc(d, "app_web").task.log_driver_options) == {"max-size": "20m"}
    assert dict(svc(d, "app_api").task.log_driver_options) == {"max-size": "2m"}


# found by tests/test_fuzz_compose.py: ports the manager refuses, refused when converted
def test_a_port_published_twice_in_a_service_is_refused() -> None:
    error = refused(service("    ports: ['7000:70', {target: 71, published: 7000}]\n"))
    assert (error.path, error.message) == ("services.web.ports",
                                           "published port 7000/tcp is listed twice")
    definition(service("    ports: ['7000:70', '7000:70/udp']\n"))   # another protocol


def test_two_services_cannot_publish_one_ingress_port() -> None:
    text = ("services:\n  web:\n    image: a\n    ports: ['8080:80']\n"
            "  api:\n    image: b\n    ports: [{target: 81, published: 8080}]\n")
    error = refused(text)
    assert error.path == "services.web.ports"
    assert error.message.startswith("published port 8080/tcp is taken by service api")
    definition(text.replace("published: 8080}", "published: 8080, mode: host}"))


# found by tests/test_fuzz_compose.py: objects the manager refuses, refused when converted
def test_overlapping_subnets_of_the_stack_are_refused() -> None:
    error = refused(service("    networks: [a, b]\n") + "networks:\n"
                    "  a: {ipam: {config: [{subnet: 10.8.0.0/16}]}}\n"
                    "  b: {ipam: {config: [{subnet: 10.8.1.0/24}]}}\n")
    assert (error.path, error.message) == (
        "networks.b.ipam.config", "subnet 10.8.1.0/24 overlaps with subnet 10.8.0.0/16 of "
                                  "network a")


def test_two_objects_of_one_name_are_refused() -> None:
    error = refused(service("    secrets: [a, b]\n") + "secrets:\n  a: {file: a.txt}\n"
                    "  b: {file: b.txt, name: app_a}\n",
                    files={f"{WORKDIR}/a.txt": b"1", f"{WORKDIR}/b.txt": b"2"})
    assert (error.path, error.message) == (
        "secrets.b.name", 'secrets.a and secrets.b are both named "app_a": give each its own '
                          "name")


@pytest.mark.parametrize("data, size", [(b"", 0), (b"x" * (500 * 1024 + 1), 500 * 1024 + 1)])
def test_an_empty_or_too_big_secret_file_is_refused(data: bytes, size: int) -> None:
    error = refused(service("    secrets: [a]\n") + "secrets:\n  a: {file: a.txt}\n",
                    files={f"{WORKDIR}/a.txt": data})
    assert (error.path, error.message) == (
        "secrets.a.file", f'secret file "{WORKDIR}/a.txt" is {size} bytes: it must hold 1 '
                          "byte to 500 KiB")
