"""Several `-c` files merged in order, with Docker's compose loader rules."""
from __future__ import annotations

from cli.compose.model import FileRef, Port, ServiceMount, ServiceNetwork, Ulimit
from tests.compose_helpers import load_texts, refused

BASE = """\
version: "3.8"
services:
  web:
    image: nginx:1
    command: ["nginx", "-g", "daemon off;"]
    environment:
      A: "1"
      B: "2"
    labels: [team=web]
    dns: [10.0.0.1]
    cap_add: [NET_ADMIN]
    ports:
      - "8080:80"
      - "53:53/udp"
      - target: 9000
    secrets: [one, {source: two, target: t2}]
    volumes:
      - data:/data
      - /srv/logs:/logs:ro
    networks:
      front:
        aliases: [www]
      back:
    ulimits:
      nofile: 1024
    logging:
      driver: json-file
      options: {max-size: 10m}
    healthcheck:
      test: ["CMD", "true"]
      interval: 10s
    deploy:
      replicas: 2
      labels: {tier: front}
      update_config: {parallelism: 1, delay: 10s}
      resources:
        limits: {cpus: "0.5", memory: 128M}
      placement:
        constraints: [node.role==worker]
  db:
    image: postgres:16
networks:
  front:
  back:
    attachable: false
volumes:
  data:
secrets:
  one: {external: true}
  two: {file: ./two.txt}
"""

OVERRIDE = """\
version: "3.8"
services:
  web:
    image: nginx:2
    command: nginx -T
    environment:
      B: "20"
      C: "3"
    labels: {owner: me}
    dns: [10.0.0.2]
    cap_add: [SYS_TIME]
    ports:
      - "8080:81"
      - "53:53/tcp"
      - target: 9001
    secrets: [{source: one, target: renamed}, three]
    volumes:
      - other:/data
    networks:
      front:
        aliases: [web2]
      extra:
    ulimits:
      nproc: {soft: 10, hard: 20}
    logging:
      options: {max-file: "1"}
    healthcheck:
      test: ["CMD", "false"]
    deploy:
      replicas: 5
      labels: {version: "2"}
      update_config: {order: start-first}
      resources:
        limits: {memory: 256M}
      placement:
        constraints: [node.labels.zone==a]
  cache:
    image: redis:7
networks:
  back:
    internal: true
  extra:
volumes:
  other:
secrets:
  three: {external: true}
"""


def merged():
    return load_texts(BASE, OVERRIDE).stack


def test_scalars_override_and_new_services_join() -> None:
    stack = merged()
    assert sorted(stack.services) == ["cache", "db", "web"]
    web = stack.services["web"]
    assert web.image == "nginx:2"
    assert web.deploy.replicas == 5
    assert stack.services["db"].image == "postgres:16"
    assert stack.files == ["a.yml", "b.yml"]


def test_command_is_replaced_not_appended() -> None:
    assert merged().services["web"].command == ["nginx", "-T"]


def test_mappings_merge_key_by_key() -> None:
    web = merged().services["web"]
    assert web.environment == {"A": "1", "B": "20", "C": "3"}
    assert web.labels == {"team": "web", "owner": "me"}
    assert web.deploy.labels == {"tier": "front", "version": "2"}
    assert web.ulimits == {"nofile": Ulimit(1024, 1024, single=True), "nproc": Ulimit(10, 20)}


def test_lists_append() -> None:
    web = merged().services["web"]
    assert web.dns == ["10.0.0.1", "10.0.0.2"]
    assert web.cap_add == ["CAP_NET_ADMIN", "CAP_SYS_TIME"]
    assert web.deploy.placement is not None
    assert web.deploy.placement.constraints == ["node.role==worker", "node.labels.zone==a"]


def test_ports_merge_by_published_port_and_protocol() -> None:
    ports = merged().services["web"].ports
    assert ports == [Port(target=81, published=8080), Port(target=53, published=53,
                                                           protocol="udp"),
                     Port(target=9000), Port(target=53, published=53), Port(target=9001)]


def test_secrets_by_source_and_volumes_by_target() -> None:
    web = merged().services["web"]
    assert web.secrets == [FileRef("one", target="renamed"), FileRef("two", target="t2"),
                           FileRef("three")]
    assert web.volumes == [ServiceMount("volume", "/data", "other"),
                           ServiceMount("bind", "/logs", "/srv/logs", read_only=True)]


def test_network_aliases_are_replaced_and_networks_merge() -> None:
    web = merged().services["web"]
    assert web.networks == {"front": ServiceNetwork(aliases=["web2"]), "back": None,
                            "extra": None}


def test_logging_options_merge_for_the_same_driver() -> None:
    logging = merged().services["web"].logging
    assert logging is not None
    assert logging.driver == "json-file"
    assert logging.options == {"max-size": "10m", "max-file": "1"}


def test_logging_with_another_driver_replaces() -> None:
    over = "services:\n  web:\n    logging:\n      driver: local\n"
    logging = load_texts(BASE, over).stack.services["web"].logging
    assert logging is not None and logging.driver == "local" and logging.options == {}


def test_nested_sections_merge_field_by_field() -> None:
    web = merged().services["web"]
    assert web.healthcheck is not None
    assert web.healthcheck.test == ["CMD", "false"] and web.healthcheck.interval == 10 * 10**9
    update = web.deploy.update_config
    assert update is not None
    assert (update.parallelism, update.delay, update.order) == (1, 10 * 10**9, "start-first")
    limits = web.deploy.limits
    assert limits is not None and (limits.cpus, limits.memory) == ("0.5", 256 << 20)


def test_top_level_entries_are_replaced_whole() -> None:
    stack = merged()
    assert stack.networks["back"].internal and not stack.networks["back"].labels
    assert sorted(stack.networks) == ["back", "extra", "front"]
    assert sorted(stack.volumes) == ["data", "other"]
    assert stack.secrets["two"].file == "/stacks/app/two.txt"


def test_three_files_merge_in_order() -> None:
    third = "services:\n  web:\n    image: nginx:3\n"
    assert load_texts(BASE, OVERRIDE, third).stack.services["web"].image == "nginx:3"


def test_override_only_file_may_omit_image() -> None:
    over = "services:\n  db:\n    environment: [X=1]\n"
    db = load_texts(BASE, over).stack.services["db"]
    assert db.image == "postgres:16" and db.environment == {"X": "1"}


def test_versions_must_match() -> None:
    error = refused(BASE, 'version: "3.7"\nservices: {}\n')
    assert error.file == "b.yml" and error.path == "version"
    assert error.message == "version mismatched between two composefiles : 3.8 and 3.7"


def test_reference_checks_run_on_the_merged_stack() -> None:
    over = "services:\n  web:\n    secrets: [missing]\n"
    error = refused(BASE, over)
    assert error.path == "services.web.secrets[2]"
    assert 'undefined secret "missing"' in error.message


def test_combinations_are_checked_after_the_merge() -> None:
    over = "services:\n  web:\n    deploy:\n      mode: global\n"
    error = refused(BASE, over)
    assert error.path == "services.web.deploy.replicas"
    assert error.message == "replicas can only be used with replicated or replicated-job mode"
