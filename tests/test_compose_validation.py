"""Validation before anything is sent: each refusal names the file, the key path and
what was expected; keys Docker Swarm ignores give Docker's warnings."""
from __future__ import annotations

import pytest

from cli.compose.convert import convert
from cli.compose.errors import ComposeError
from cli.compose.model import Healthcheck, Port, ServiceMount, Ulimit
from tests.compose_helpers import load_texts, refused, service

# (service keys, indented by 4; the key path; a fragment of the message)
BAD_SERVICE_VALUES = [
    ("    deploy:\n      replicas: -1\n", "services.web.deploy.replicas", "at least 0"),
    ("    deploy:\n      replicas: two\n", "services.web.deploy.replicas", "must be an integer"),
    ("    deploy:\n      mode: daemon\n", "services.web.deploy.mode",
     "expected one of replicated, global, replicated-job, global-job"),
    ("    deploy:\n      mode: global\n      replicas: 2\n", "services.web.deploy.replicas",
     "replicas can only be used with replicated or replicated-job mode"),
    ("    deploy:\n      endpoint_mode: round\n", "services.web.deploy.endpoint_mode",
     "expected one of vip, dnsrr"),
    ("    deploy:\n      restart_policy:\n        condition: always\n",
     "services.web.deploy.restart_policy.condition", "expected one of none, on-failure, any"),
    ("    deploy:\n      restart_policy:\n        delay: 5 seconds\n",
     "services.web.deploy.restart_policy.delay", 'invalid duration "5 seconds"'),
    ("    deploy:\n      update_config:\n        failure_action: retry\n",
     "services.web.deploy.update_config.failure_action",
     "expected one of continue, pause, rollback"),
    ("    deploy:\n      rollback_config:\n        failure_action: rollback\n",
     "services.web.deploy.rollback_config.failure_action", "expected one of continue, pause"),
    ("    deploy:\n      update_config:\n        order: random\n",
     "services.web.deploy.update_config.order", "expected one of stop-first, start-first"),
    ("    deploy:\n      update_config:\n        max_failure_ratio: 2\n",
     "services.web.deploy.update_config.max_failure_ratio", "between 0 and 1"),
    ("    deploy:\n      update_config:\n        monitor: 1x\n",
     "services.web.deploy.update_config.monitor", "invalid duration"),
    ("    deploy:\n      placement:\n        constraints: [node.role=worker]\n",
     "services.web.deploy.placement.constraints[0]", "invalid constraint"),
    ("    deploy:\n      placement:\n        constraints: [node.role==boss]\n",
     "services.web.deploy.placement.constraints[0]", "node.role is manager or worker"),
    ("    deploy:\n      placement:\n        preferences: [{spread: zone}]\n",
     "services.web.deploy.placement.preferences[0].spread", "node.labels.<label>"),
    ("    deploy:\n      placement:\n        max_replicas_per_node: -2\n",
     "services.web.deploy.placement.max_replicas_per_node", "at least 0"),
    ("    deploy:\n      resources:\n        limits: {cpus: lots}\n",
     "services.web.deploy.resources.limits.cpus", 'invalid CPU count "lots"'),
    ("    deploy:\n      resources:\n        limits: {memory: 12 parsecs}\n",
     "services.web.deploy.resources.limits.memory", 'invalid size "12 parsecs"'),
    ("    deploy:\n      resources:\n        limits: {pids: -1}\n",
     "services.web.deploy.resources.limits.pids", "must be at least 0, not -1"),
    ("    deploy:\n      resources:\n        reservations:\n          generic_resources: []\n",
     "services.web.deploy.resources.reservations.generic_resources", "not supported"),
    ("    deploy:\n      replica: 2\n", "services.web.deploy.replica",
     'unknown key "replica" (did you mean "replicas"?)'),
    ("    deploy:\n      zzz: 2\n", "services.web.deploy.zzz",
     'unknown key "zzz"; expected one of: endpoint_mode, labels, mode, placement, replicas,'),
    ("    ports: [\"8080:80/icmp\"]\n", "services.web.ports[0]", 'invalid protocol "icmp"'),
    ("    ports: [\"80000:80\"]\n", "services.web.ports[0]", "80000 is out of range 1-65535"),
    ("    ports: [\"127.0.0.1:8080:80\"]\n", "services.web.ports[0]", "host IP"),
    ("    ports: [\"90-80\"]\n", "services.web.ports[0]", "the range 90-80 is empty"),
    ("    ports: [\"1-3:4-5\"]\n", "services.web.ports[0]", "ranges differ in size"),
    ("    ports: [\"a:b\"]\n", "services.web.ports[0]", 'invalid port "a:b"; expected'),
    ("    ports:\n      - target: 80\n        mode: bridge\n", "services.web.ports[0].mode",
     "expected one of ingress, host"),
    ("    ports:\n      - published: 80\n", "services.web.ports[0].target",
     '"target" is required'),
    ("    ports:\n      - target: 80\n        name: http\n", "services.web.ports[0].name",
     'unknown key "name"'),
    ("    ports: 80\n", "services.web.ports", "must be a list of ports"),
    ("    cap_add: [NET_ADMIN, \"\"]\n", "services.web.cap_add[1]", 'invalid capability ""'),
    ("    healthcheck:\n      test: [\"RUN\", \"x\"]\n", "services.web.healthcheck.test",
     'must start with "CMD", "CMD-SHELL" or "NONE"'),
    ("    healthcheck:\n      test: [\"CMD-SHELL\", \"a\", \"b\"]\n",
     "services.web.healthcheck.test", "exactly one command string"),
    ("    healthcheck:\n      test: [\"CMD\", \"x\"]\n      disable: true\n",
     "services.web.healthcheck", "test and disable can't be set at the same time"),
    ("    healthcheck:\n      interval: often\n", "services.web.healthcheck.interval",
     "invalid duration"),
    ("    healthcheck:\n      retries: many\n", "services.web.healthcheck.retries",
     "must be an integer"),
    ("    volumes: [\"data:/data:rx\"]\n", "services.web.volumes[0]", 'invalid mode "rx"'),
    ("    volumes: [\"a:b:c:d\"]\n", "services.web.volumes[0]", "[SOURCE:]TARGET[:MODE]"),
    ("    volumes: [\"data:relative\"]\n", "services.web.volumes[0]",
     'target "relative" must be an absolute path'),
    ("    volumes: [\"./x:/x:nocopy\"]\n", "services.web.volumes[0]",
     "applies to named volumes only"),
    ("    volumes:\n      - type: npipe\n        target: /x\n", "services.web.volumes[0].type",
     "expected one of volume, bind, tmpfs"),
    ("    volumes:\n      - type: tmpfs\n        target: /x\n        tmpfs: {size: huge}\n",
     "services.web.volumes[0].tmpfs.size", 'invalid size "huge"'),
    ("    volumes:\n      - type: bind\n        target: /x\n", "services.web.volumes[0]",
     "a bind mount needs a source path"),
    ("    volumes:\n      - type: volume\n        target: /x\n        bind: {propagation: shared}\n",
     "services.web.volumes[0].bind", "do not apply to a volume mount"),
    ("    volumes:\n      - type: bind\n        source: /a\n        target: /x\n"
     "        consistency: cached\n", "services.web.volumes[0].consistency", "not supported"),
    ("    volumes:\n      - source: x\n        target: /x\n", "services.web.volumes[0].type",
     '"type" is required'),
    ("    secrets:\n      - target: x\n", "services.web.secrets[0].source",
     '"source" is required'),
    ("    secrets:\n      - source: s\n        uid: root\n", "services.web.secrets[0].uid",
     "numeric uid"),
    ("    secrets:\n      - source: s\n        gid: \"99999999999\"\n",
     "services.web.secrets[0].gid", "numeric gid (0 to 4294967295)"),
    ("    secrets:\n      - source: s\n        mode: 99999\n", "services.web.secrets[0].mode",
     "out of range"),
    ("    configs: conf\n", "services.web.configs", "must be a list"),
    ("    extra_hosts: [\"db 10.0.0.5\"]\n", "services.web.extra_hosts[0]",
     "expected HOST:IP"),
    ("    extra_hosts: {db: not-an-ip}\n", "services.web.extra_hosts[0]",
     "invalid IP address"),
    ("    environment: A=1\n", "services.web.environment",
     "a mapping or a list of KEY=VALUE strings"),
    ("    environment: {A: [1]}\n", "services.web.environment.A",
     "must be a string, a number, a boolean or null"),
    ("    labels: [\"=x\"]\n", "services.web.labels[0]", "must be KEY=VALUE"),
    ("    logging:\n      driver: syslog\n", "services.web.logging.driver",
     'log driver "syslog" is not supported'),
    ("    logging:\n      options: {compress: \"true\"}\n",
     "services.web.logging.options.compress", 'log option "compress" is not supported'),
    ("    logging:\n      options: {max-file: zero}\n",
     "services.web.logging.options.max-file", "max-file must be a positive number"),
    ("    logging:\n      options: {max-size: big}\n",
     "services.web.logging.options.max-size", 'invalid size "big"'),
    ("    logging:\n      options: {max-size: 10m, max-file: \"3\"}\n",
     "services.web.logging.options.max-file",
     'log option max-file "3" is not supported: podman keeps one log file per task'),
    ("    logging:\n      options: {max-size: \"0\"}\n",
     "services.web.logging.options.max-size", "max-size must be a positive size"),
    ("    ulimits:\n      nofiles: 10\n", "services.web.ulimits.nofiles", 'unknown ulimit "nofiles"'),
    ("    ulimits:\n      nofile: {soft: 10}\n", "services.web.ulimits.nofile.hard",
     '"hard" is required'),
    ("    ulimits:\n      nofile: {soft: 20, hard: 10}\n", "services.web.ulimits.nofile",
     "greater than the hard limit"),
    ("    networks:\n      front:\n        ipv4_address: 10.0.0.9\n",
     "services.web.networks.front.ipv4_address", '"ipv4_address" is not supported'),
    ("    networks:\n      front:\n        alias: [x]\n", "services.web.networks.front.alias",
     'unknown key "alias"'),
    ("    tty: yes\n", "services.web.tty", "must be a boolean (true or false), not a string"),
    ("    read_only: 1\n", "services.web.read_only", "must be a boolean"),
    ("    stop_grace_period: 10\n", "services.web.stop_grace_period", "must be a string"),
    ("    stop_grace_period: soon\n", "services.web.stop_grace_period", "invalid duration"),
    ("    command: {a: b}\n", "services.web.command", "must be a list of strings"),
    ("    command: \"echo 'unclosed\"\n", "services.web.command", "cannot split"),
    ("    tmpfs: run\n", "services.web.tmpfs", "must be an absolute path"),
    ("    tmpfs: /run:size=1m\n", "services.web.tmpfs", "use a volumes entry of type tmpfs"),
    ("    volumes: [\"~/x:/x\"]\n", "services.web.volumes[0]", 'cannot expand "~"'),
    ("    dns: [1, [2]]\n", "services.web.dns[0]", "must be a string"),
    ("    image: [nginx]\n", "services.web.image", "must be a string"),
    ("    image: \"Not Valid\"\n", "services.web.image", "invalid image reference"),
    ("    stdin_open: true\n", "services.web.stdin_open",
     '"stdin_open" is not supported by Shoal yet'),
    ("    oom_score_adj: 1001\n", "services.web.oom_score_adj", "must be at most 1000, not 1001"),
    ("    oom_score_adj: -1001\n", "services.web.oom_score_adj",
     "must be at least -1000, not -1001"),
    ("    isolation: hyperv\n", "services.web.isolation", "not supported by Shoal yet"),
    ("    frobnicate: 1\n", "services.web.frobnicate", 'unknown key "frobnicate"'),
    ("    depends_on: db\n", "services.web.depends_on", "a list of service names"),
    ("    env_file: missing.env\n", "services.web.env_file[0]",
     'cannot read "/stacks/app/missing.env"'),
    ("    networks: [nowhere]\n", "services.web.networks",
     'references network "nowhere", which is not declared'),
    ("    volumes: [\"nowhere:/x\"]\n", "services.web.volumes[0]", 'undefined volume "nowhere"'),
    ("    configs: [nowhere]\n", "services.web.configs[0]", 'undefined config "nowhere"'),
    # found by tests/test_fuzz_compose.py: a size past int64 escaped as the protobuf's
    # ValueError when converted; a reservation above its limit was refused only by the manager
    ("    deploy:\n      resources:\n        limits:\n          memory: 9223372036854775808\n",
     "services.web.deploy.resources.limits.memory", "must be at most 9223372036854775807 bytes"),
    ("    volumes:\n      - {type: tmpfs, target: /t, tmpfs: {size: 18446744073709551616}}\n",
     "services.web.volumes[0].tmpfs.size", "must be at most 9223372036854775807 bytes"),
    ("    deploy:\n      resources:\n        limits: {memory: 1}\n"
     "        reservations: {memory: 512M}\n",
     "services.web.deploy.resources.reservations.memory",
     "the memory reservation (536870912 bytes) is larger than the memory limit (1 bytes)"),
    ("    deploy:\n      resources:\n        limits: {cpus: '0.5'}\n"
     "        reservations: {cpus: 1}\n",
     "services.web.deploy.resources.reservations.cpus",
     "the CPU reservation (1) is larger than the CPU limit (0.5)"),
    # found by tests/test_fuzz_compose.py: values the manager refuses in CreateService,
    # now refused at load at their key (cli/compose/rules.py)
    ("    dns: [10.0.0.2, dns.example.org]\n", "services.web.dns[1]",
     'invalid DNS server "dns.example.org": expected an IP address'),
    ("    dns_search: 'a b'\n", "services.web.dns_search[0]",
     'invalid DNS search domain "a b": it must not be empty nor contain white space'),
    ("    dns_opt: ['']\n", "services.web.dns_opt[0]", 'invalid DNS option ""'),
    ("    stop_signal: SIGNOPE\n", "services.web.stop_signal",
     'invalid stop signal "SIGNOPE": expected a signal name such as SIGTERM'),
    ("    stop_signal: '65'\n", "services.web.stop_signal", "or a number from 1 to 64"),
    ("    cap_add: [NET_ADMIN, FLY]\n", "services.web.cap_add[1]",
     'unknown capability "CAP_FLY": expected a Linux capability such as NET_ADMIN'),
    ("    cap_drop: [RESET]\n", "services.web.cap_drop[0]", 'unknown capability "RESET"'),
    ("    sysctls: [net.core.somaxconn]\n", "services.web.sysctls.net.core.somaxconn",
     'invalid sysctl "net.core.somaxconn=": expected a name and a value'),
    ("    sysctls: {kernel.panic: 1}\n", "services.web.sysctls.kernel.panic",
     'sysctl "kernel.panic" is not allowed in a container'),
    ("    environment: {'A B': 1}\n", "services.web.environment.A B",
     'invalid environment variable name "A B"'),
    ("    group_add: [audio, '']\n", "services.web.group_add[1]",
     'invalid supplementary group ""'),
    ("    volumes:\n      - {type: tmpfs, target: /t, tmpfs: {mode: 4294967296}}\n",
     "services.web.volumes[0].tmpfs.mode", "must be at most 4095"),
]


@pytest.mark.parametrize("body, path, fragment", BAD_SERVICE_VALUES,
                         ids=[case[1] + ":" + case[2][:20] for case in BAD_SERVICE_VALUES])
def test_bad_service_values(body: str, path: str, fragment: str) -> None:
    text = service(body) + "networks:\n  front:\n"
    if body.lstrip().startswith("image:"):
        text = "services:\n  web:\n" + body + "networks:\n  front:\n"
    error = refused(text)
    assert error.file == "a.yml"
    assert error.path == path
    assert fragment in error.message, error.message
    assert str(error).startswith(f"a.yml, {path}: ")


BAD_TOP_LEVEL = [
    ('version: "2.4"\nservices: {}\n', "version", "unsupported Compose file version: 2.4"),
    ("version: [3]\n", "version", "must be a string"),
    ("services: []\n", "services", "must be a mapping"),
    ("services:\n  web: 5\n", "services.web", "must be a mapping"),
    ("name: app\n", "name", 'unknown key "name"'),
    ("services:\n  'web app':\n    image: a\n", "services.web app", 'invalid name "web app"'),
    ("networks:\n  'a/b':\n", "networks.a/b", 'invalid name "a/b"'),
    ("networks:\n  n:\n    driver: bridge\n", "networks.n.driver", "expected one of overlay"),
    ("networks:\n  n:\n    ipam:\n      config: [{subnet: 10.0.0.0/33}]\n",
     "networks.n.ipam.config[0].subnet", 'invalid subnet "10.0.0.0/33"'),
    ("networks:\n  n:\n    ipam:\n      config: [{subnet: 'fd00::/64'}]\n",
     "networks.n.ipam.config[0].subnet", "IPv6 subnets"),
    ("networks:\n  n:\n    ipam:\n      driver: dhcp\n", "networks.n.ipam.driver",
     "expected one of default"),
    ("networks:\n  n:\n    external: true\n    driver: overlay\n", "networks.n.driver",
     'conflicting parameters "external" and "driver"'),
    ("networks:\n  n:\n    attachable: maybe\n", "networks.n.attachable", "must be a boolean"),
    ("networks:\n  n:\n    attachable: true\n", "networks.n.attachable",
     "not supported by Shoal yet: Shoal runs no standalone containers"),
    ("networks:\n  n:\n    enable_ipv6: true\n", "networks.n.enable_ipv6", "not supported"),
    ("networks:\n  n:\n    name: a\n    external: {name: b}\n", "networks.n",
     "network.external.name and network.name conflict"),
    ("volumes:\n  v:\n    external: true\n    labels: [a=b]\n", "volumes.v.labels",
     'conflicting parameters "external" and "labels"'),
    ("volumes:\n  v:\n    x-cluster-spec: {group: g}\n", "volumes.v.x-cluster-spec",
     "no cluster volumes"),
    ("volumes:\n  v:\n    size: 1g\n", "volumes.v.size", 'unknown key "size"'),
    ("secrets:\n  s: {}\n", "secrets.s", 'needs "file"'),
    ("secrets:\n  s:\n    file: ./s\n    external: true\n", "secrets.s.file",
     'conflicting parameters "external" and "file"'),
    ("secrets:\n  s:\n    driver: vault\n", "secrets.s.driver", "not supported"),
    ("configs:\n  c:\n    template_driver: golang\n", "configs.c.template_driver",
     "not supported"),
    ("configs:\n  c:\n    file: 5\n", "configs.c.file", "must be a string"),
    # found by tests/test_fuzz_compose.py: networks the manager refuses
    ("networks:\n  n:\n    ipam:\n      config: [{subnet: 10.1.0.0/24}, {subnet: 10.2.0.0/24}]"
     "\n", "networks.n.ipam.config", "more than one subnet"),
    ("networks:\n  n:\n    ipam:\n      config: [{subnet: 10.1.0.1/24}]\n",
     "networks.n.ipam.config[0].subnet", "its host bits must be 0, as in 10.1.0.0/24"),
    ("networks:\n  n:\n    ipam:\n      config: [{subnet: 10.1.0.0/30}]\n",
     "networks.n.ipam.config[0].subnet", "the prefix must be /29 or shorter"),
    ("networks:\n  n:\n    driver_opts: {com.docker.network.mtu: 1400}\n",
     "networks.n.driver_opts.com.docker.network.mtu",
     "Shoal's overlay driver takes only the option encrypted"),
]


@pytest.mark.parametrize("text, path, fragment", BAD_TOP_LEVEL,
                         ids=[case[1] + ":" + case[2][:20] for case in BAD_TOP_LEVEL])
def test_bad_top_level_values(text: str, path: str, fragment: str) -> None:
    error = refused(text)
    assert (error.file, error.path) == ("a.yml", path)
    assert fragment in error.message, error.message


@pytest.mark.parametrize("text, fragment", [
    ("services: [\n", "invalid YAML"),
    ("- a\n- b\n", "top-level object must be a mapping"),
    ("services:\n  web: {image: a}\n  web: {image: b}\n", 'mapping key "web" already defined'),
    ("a: &x [*x]\n", "recursive"),
    ("? [a]\n: b\n", "must be a string"),
    ("1: x\n", "must be a string"),
    ("!!python/object:os.system {}\n", "invalid YAML"),
    ("a: 1\n---\nb: 2\n", "invalid YAML"),
    ("c: !!timestamp 2001-12-14\n  - a\n", "invalid YAML"),
    ("services: !!timestamp 2001-12-14\n", "must be a mapping, not a date"),
])
def test_bad_documents(text: str, fragment: str) -> None:
    error = refused(text)
    assert error.file == "a.yml"
    assert fragment in error.message, error.message


def test_alias_bombs_are_refused() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 8):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    error = refused("\n".join(lines) + "\n")
    assert "aliases are expanded" in error.message


def test_forbidden_keys_are_refused_with_dockers_message() -> None:
    error = refused(service("    extends: base\n    cpu_shares: 10\n    mem_limit: 1g\n"))
    assert error.message == (
        "compose file contains unsupported options:\n\n"
        "cpu_shares: Set resource limits using deploy.resources\n\n"
        "extends: Support for `extends` is not implemented yet.\n\n"
        "mem_limit: Set resource limits using deploy.resources\n")
    assert error.path.startswith("services.web.")


@pytest.mark.parametrize("key", ["volumes_from", "volume_driver", "cpuset", "cpu_quota",
                                 "memswap_limit"])
def test_every_forbidden_key(key: str) -> None:
    assert f"\n\n{key}: " in refused(service(f"    {key}: x\n")).message


def test_unsupported_and_deprecated_keys_warn_and_are_dropped() -> None:
    loaded = load_texts(service(
        "    build: .\n    privileged: true\n    restart: always\n    links: [db]\n"
        "    container_name: web1\n    expose: [\"80\"]\n    depends_on: [db]\n"),
        "services:\n  db:\n    image: postgres\n    security_opt: [x]\n")
    assert loaded.warnings == [
        "Ignoring depends_on: the services of a stack start in any order (as in Docker "
        "Swarm); make each one wait for what it needs",
        "Ignoring unsupported options: build, links, privileged, restart, security_opt",
        "Ignoring deprecated options:\n\n"
        "container_name: Setting the container name is not supported.\n\n"
        "expose: Exposing ports is unnecessary - services on the same network can access "
        "each other's containers on any port."]
    assert loaded.stack.services["web"].image == "nginx:1"


def test_extension_fields_everywhere_are_dropped() -> None:
    loaded = load_texts(
        "x-top: 1\nservices:\n  web:\n    image: a\n    x-svc: {any: thing}\n"
        "    deploy:\n      x-deep: 1\n      replicas: 1\n"
        "networks:\n  n:\n    x-net: 1\nvolumes:\n  v:\n    x-vol: 1\n"
        "secrets:\n  s:\n    external: true\n    x-s: 1\n"
        "configs:\n  c:\n    file: c.txt\n    x-c: 1\n")
    assert loaded.stack.services["web"].deploy.replicas == 1
    assert sorted(loaded.stack.networks) == ["n"]


def test_anchors_aliases_and_merge_keys() -> None:
    text = """\
x-defaults: &defaults
  image: app:1
  environment: &env
    LOG: info
  deploy:
    replicas: 2
services:
  a:
    <<: *defaults
  b:
    <<: *defaults
    environment:
      <<: *env
      EXTRA: "1"
    deploy:
      replicas: 4
"""
    stack = load_texts(text).stack
    assert stack.services["a"].image == "app:1" and stack.services["a"].deploy.replicas == 2
    assert stack.services["b"].environment == {"LOG": "info", "EXTRA": "1"}
    assert stack.services["b"].deploy.replicas == 4


def test_yaml_scalars_read_as_docker_reads_them() -> None:
    stack = load_texts(service(
        "    environment:\n      A: yes\n      B: on\n      C: 0x1F\n      D: 1.50\n"
        "      E: null\n      F: true\n    ports:\n      - 8080:80\n"
        "    secrets:\n      - source: s\n        mode: 0440\n") +
        "secrets:\n  s:\n    external: true\n").stack
    web = stack.services["web"]
    assert web.environment == {"A": "yes", "B": "on", "C": "31", "D": "1.5", "E": None,
                               "F": "true"}
    assert web.ports == [Port(target=80, published=8080)]
    assert web.secrets is not None and web.secrets[0].mode == 0o440


def test_service_forms_normalized() -> None:
    files = {"/stacks/app/web.env": "# comment\nFROM_FILE=1\nOVERRIDDEN=file\nBARE\n\n",
             "/stacks/app/conf/app.conf": "x"}
    stack = load_texts(service("""\
    command: echo "hello world"
    entrypoint: ["/bin/sh", "-c"]
    env_file: web.env
    environment:
      - OVERRIDDEN=env
      - FROM_CLIENT
    labels: {a: 1}
    extra_hosts: {db: 10.0.0.5, v6: "::1"}
    cap_add: [net_admin, ALL]
    ulimits:
      nofile: {soft: 1024, hard: 2048}
      nproc: 64
    tmpfs: [/run, /tmp]
    dns: 8.8.8.8
    dns_opt: [ndots:2]
    group_add: [wheel, 100]
    ports:
      - "8000-8001:80-81/udp"
      - target: 443
        published: 443
        mode: host
    volumes:
      - data:/data:ro,nocopy
      - ./logs:/logs:rshared
      - ~/cache:/cache
      - /anonymous
      - type: tmpfs
        target: /scratch
        tmpfs: {size: 64m, mode: 1777}
    networks:
      front:
        aliases: [www, site]
      back: {}
    healthcheck:
      test: curl -f localhost
      interval: 1m30s
      start_period: 500ms
      retries: 3
    logging:
      driver: json-file
      options: {max-size: 10m, max-file: 1}
    stop_grace_period: 1m
    deploy:
      mode: replicated-job
      replicas: 3
      endpoint_mode: dnsrr
      placement:
        constraints: ["node.labels.pcidss == yes"]
        preferences: [{spread: node.labels.zone}]
        max_replicas_per_node: 1
      resources:
        limits: {cpus: "1.5", memory: 1g}
        reservations: {cpus: 0.25, memory: 1024}
""") + "networks:\n  front:\n  back:\nvolumes:\n  data:\n"
        "configs:\n  app:\n    file: ./conf/app.conf\n",
        env={"FROM_CLIENT": "client", "BARE": "bare", "HOME": "/home/me"}, files=files).stack
    web = stack.services["web"]
    assert web.command == ["echo", "hello world"] and web.entrypoint == ["/bin/sh", "-c"]
    assert web.environment == {"FROM_FILE": "1", "OVERRIDDEN": "env", "BARE": "bare",
                               "FROM_CLIENT": "client"}
    assert web.env_file == ["/stacks/app/web.env"]
    assert web.labels == {"a": "1"}
    assert web.extra_hosts == ["db:10.0.0.5", "v6:::1"]
    assert web.cap_add == ["CAP_NET_ADMIN", "ALL"]
    assert web.ulimits == {"nofile": Ulimit(1024, 2048), "nproc": Ulimit(64, 64, single=True)}
    assert web.tmpfs == ["/run", "/tmp"] and web.dns == ["8.8.8.8"]
    assert web.dns_opt == ["ndots:2"] and web.group_add == ["wheel", "100"]
    assert web.ports == [Port(80, 8000, "udp"), Port(81, 8001, "udp"),
                         Port(443, 443, "tcp", "host")]
    assert web.volumes == [
        ServiceMount("volume", "/data", "data", read_only=True, nocopy=True),
        ServiceMount("bind", "/logs", "/stacks/app/logs", propagation="rshared"),
        ServiceMount("bind", "/cache", "/home/me/cache"),
        ServiceMount("volume", "/anonymous"),
        ServiceMount("tmpfs", "/scratch", tmpfs_size=64 << 20, tmpfs_mode=1777)]
    assert web.networks is not None and web.networks["front"] is not None
    assert web.networks["front"].aliases == ["www", "site"]
    assert web.healthcheck == Healthcheck(test=["CMD-SHELL", "curl -f localhost"],
                                          interval=90 * 10**9, start_period=500 * 10**6,
                                          retries=3)
    assert web.logging is not None
    assert web.logging.options == {"max-size": "10m", "max-file": "1"}
    assert web.stop_grace_period == 60 * 10**9
    deploy = web.deploy
    assert (deploy.mode, deploy.replicas, deploy.endpoint_mode) == ("replicated-job", 3, "dnsrr")
    assert deploy.placement is not None and deploy.placement.max_replicas_per_node == 1
    assert deploy.placement.preferences == ["node.labels.zone"]
    assert deploy.limits is not None and deploy.limits.nano_cpus == 1_500_000_000
    assert deploy.limits.memory == 1 << 30
    assert deploy.reservations is not None and deploy.reservations.nano_cpus == 250_000_000
    assert deploy.reservations.memory == 1024
    assert stack.configs["app"].file == "/stacks/app/conf/app.conf"


@pytest.mark.parametrize("test, expected", [
    ("[\"NONE\"]", ["NONE"]), ("[\"CMD\", \"true\"]", ["CMD", "true"]),
    ("[\"CMD-SHELL\", \"exit 0\"]", ["CMD-SHELL", "exit 0"]), ("exit 0", ["CMD-SHELL", "exit 0"]),
])
def test_healthcheck_test_forms(test: str, expected: list[str]) -> None:
    web = load_texts(service(f"    healthcheck:\n      test: {test}\n")).stack.services["web"]
    assert web.healthcheck is not None and web.healthcheck.test == expected


def test_empty_deploy_is_allowed() -> None:
    web = load_texts(service("    deploy:\n")).stack.services["web"]
    assert web.deploy.replicas is None and web.deploy.mode is None


def test_healthcheck_disable() -> None:
    web = load_texts(service("    healthcheck:\n      disable: true\n")).stack.services["web"]
    assert web.healthcheck == Healthcheck(disable=True)


@pytest.mark.parametrize("mode", ["replicated", "global", "replicated-job", "global-job"])
def test_every_deploy_mode(mode: str) -> None:
    web = load_texts(service(f"    deploy:\n      mode: {mode}\n")).stack.services["web"]
    assert web.deploy.mode == mode


def test_network_and_volume_definitions() -> None:
    stack = load_texts("""\
services: {}
networks:
  plain:
  enc:
    driver: overlay
    driver_opts: {encrypted: ""}
    attachable: false
    internal: true
    labels: [team=a]
    ipam:
      config:
        - subnet: 10.9.0.0/24
  old:
    external:
      name: shared-net
  ext:
    external: true
volumes:
  local:
    driver: local
    driver_opts: {type: tmpfs, device: tmpfs, o: size=1m}
    labels: {a: b}
  named:
    name: fixed-name
  outside:
    external: true
secrets:
  s1:
    file: ./secret.txt
    labels: {x: y}
  s2:
    external: true
    name: real-name
""").stack
    enc = stack.networks["enc"]
    assert (enc.driver, enc.driver_opts, enc.internal) == ("overlay", {"encrypted": ""}, True)
    assert enc.subnets == ["10.9.0.0/24"] and enc.labels == {"team": "a"}
    assert stack.networks["old"].external and stack.networks["old"].name == "shared-net"
    assert stack.networks["plain"].driver is None and stack.networks["plain"].name is None
    assert stack.networks["ext"].external and stack.networks["ext"].name == "ext"
    assert stack.volumes["local"].driver_opts == {"type": "tmpfs", "device": "tmpfs",
                                                  "o": "size=1m"}
    assert stack.volumes["named"].name == "fixed-name" and stack.volumes["outside"].external
    assert stack.secrets["s1"].file == "/stacks/app/secret.txt"
    assert stack.secrets["s2"].external and stack.secrets["s2"].name == "real-name"


def test_a_reservation_above_a_limit_given_in_another_file_is_refused() -> None:
    limits = service("    deploy:\n      resources:\n        limits: {memory: 64M}\n")
    more = "services:\n  web:\n    deploy:\n      resources:\n        reservations:\n" \
           "          memory: 128M\n"
    error = refused(limits, more)
    assert (error.file, error.path) == ("b.yml", "services.web.deploy.resources.reservations"
                                                  ".memory")
    assert "is larger than the memory limit" in error.message
    equal = more.replace("128M", "64M")
    assert load_texts(limits, equal).stack.services["web"].deploy.reservations is not None


FILES = {"/stacks/app/s.txt": "secret"}
WITH_FILES = "secrets:\n  s: {file: s.txt}\nconfigs:\n  c: {file: s.txt, name: NAME}\n"


@pytest.mark.parametrize("body, name, path, fragment", [
    ("    secrets: [{source: s, target: /}]\n", "app-c", "services.web.secrets[0].target",
     "invalid target \"/\" for the secret: it must name a file and must not contain '..'"),
    ("    configs: [{source: c, target: ' '}]\n", "app-c", "services.web.configs[0].target",
     'invalid target " " for the config: expected a file name or an absolute path'),
    ("    configs: [{source: c, target: /etc/x}, {source: c, target: /etc//x}]\n", "app-c",
     "services.web.configs[1]",
     "config c and config c are both mounted at /etc/x: give one of them another target"),
    ("    secrets: [s, {source: s, target: /run/secrets/s}]\n", "app-c",
     "services.web.secrets[1]", "secret s and secret s are both mounted at /run/secrets/s"),
    ("    secrets: [s]\n    tmpfs: /run/secrets/s/x\n", "app-c", "services.web.volumes",
     "mount target /run/secrets/s/x collides with secret s at /run/secrets/s"),
    ("", " ", "configs.c.name", 'invalid config name " ": use 1 to 63 letters'),
    ("", "a" * 64, "configs.c.name", "invalid config name"),
])
def test_files_the_manager_would_refuse(body: str, name: str, path: str,
                                        fragment: str) -> None:
    """(found by tests/test_fuzz_compose.py) checked at load or when the stack is converted"""
    text = service(body) + WITH_FILES.replace("NAME", f"'{name}'")
    try:
        loaded = load_texts(text, files=FILES)
    except ComposeError as exc:
        error = exc
    else:
        with pytest.raises(ComposeError) as info:
            convert(loaded.stack, "app", lambda p: FILES[p].encode())
        error = info.value
    assert error.path == path
    assert fragment in error.message, error.message
