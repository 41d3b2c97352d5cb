"""Docker Hub names in the lab: the name mapping (lab/hubnames.py), a node's registry
view (lab/podstore.py) and the stand-in's pure parts (lab/images.py). Pure logic: no
registry, no podman."""
from __future__ import annotations

import tomllib

import pytest

from lab.hubnames import (ImageNameError, StandInRequest, parse_name, parse_stand_in,
                          stand_in_request)
from lab.images import STAND_IN_LABEL, _stand_in_script, main, stand_in_label
from lab.podstore import registries_conf


@pytest.mark.parametrize("name, repository, tag, canonical", [
    ("redis:alpine", "library/redis", "alpine", "docker.io/library/redis:alpine"),
    ("redis", "library/redis", "latest", "docker.io/library/redis:latest"),
    ("docker.io/library/redis:alpine", "library/redis", "alpine",
     "docker.io/library/redis:alpine"),
    ("docker.io/redis:7", "library/redis", "7", "docker.io/library/redis:7"),
    ("index.docker.io/library/redis", "library/redis", "latest",
     "docker.io/library/redis:latest"),
    ("dockersamples/examplevotingapp_vote:before", "dockersamples/examplevotingapp_vote",
     "before", "docker.io/dockersamples/examplevotingapp_vote:before"),
    ("docker.io/dockersamples/atsea_app", "dockersamples/atsea_app", "latest",
     "docker.io/dockersamples/atsea_app:latest"),
    ("my-org/team__x/app.v2:1.0-rc_1", "my-org/team__x/app.v2", "1.0-rc_1",
     "docker.io/my-org/team__x/app.v2:1.0-rc_1"),
    ("127.0.0.1:5000/demo/web:2", "demo/web", "2", "127.0.0.1:5000/demo/web:2"),
])
def test_a_name_maps_to_its_docker_hub_repository_in_the_lab_registry(
        name: str, repository: str, tag: str, canonical: str) -> None:
    image = parse_name(name)
    assert (image.repository, image.tag, image.canonical) == (repository, tag, canonical)
    assert image.reference == f"127.0.0.1:5000/{repository}:{tag}"
    assert image.name == name


def test_unqualified_and_docker_io_spellings_are_one_image() -> None:
    spellings = ["postgres:9.4", "library/postgres:9.4", "docker.io/postgres:9.4",
                 "docker.io/library/postgres:9.4", "index.docker.io/postgres:9.4"]
    assert {parse_name(s).reference for s in spellings} == {"127.0.0.1:5000/library/postgres:9.4"}


@pytest.mark.parametrize("name, says", [
    ("", "empty"),
    ("redis@sha256:" + "a" * 64, "digest"),
    ("quay.io/prometheus/node-exporter", "quay.io names from quay.io"),
    ("localhost/app", "Docker Hub names"),
    ("127.0.0.1:5001/app", "Docker Hub names"),
    ("Redis:alpine", "invalid repository component 'Redis'"),
    ("team//app", "invalid repository component ''"),
    ("redis:", "invalid tag ''"),
    ("redis:-x", "invalid tag '-x'"),
    ("shoal/busybox", "lab's own images"),
    ("127.0.0.1:5000/shoal/busybox:latest", "lab's own images"),
])
def test_names_that_cannot_get_a_stand_in_are_refused_with_the_reason(name: str,
                                                                       says: str) -> None:
    with pytest.raises(ImageNameError) as err:
        parse_name(name)
    assert says in str(err.value)


def test_stand_in_argument_name_and_ports() -> None:
    assert parse_stand_in("redis:alpine=6379") == StandInRequest(parse_name("redis:alpine"),
                                                                 (6379,))
    assert parse_stand_in("web") == StandInRequest(parse_name("web"), (80,))
    assert parse_stand_in("web=8080, 80,8080").ports == (80, 8080)
    assert stand_in_request("web", 8080) == stand_in_request("web", [8080])
    for bad, says in [("web=", "invalid port ''"), ("web=http", "invalid port 'http'"),
                      ("web=0", "invalid port 0"), ("web=65536", "invalid port 65536"),
                      ("web=80,", "invalid port ''")]:
        with pytest.raises(ImageNameError) as err:
            parse_stand_in(bad)
        assert says in str(err.value), bad
    with pytest.raises(ImageNameError, match="at least one port"):
        stand_in_request("web", [])


def test_a_nodes_registry_view_reads_docker_hub_from_the_lab_registry() -> None:
    conf = tomllib.loads(registries_conf("10.99.0.1:5000"))
    assert conf["unqualified-search-registries"] == ["docker.io"]
    assert conf["short-name-mode"] == "disabled"          # never a prompt (no TTY)
    tables = {t["prefix"]: t for t in conf["registry"]}
    assert tables["docker.io"] == {"prefix": "docker.io", "location": "10.99.0.1:5000",
                                   "insecure": True}
    local = tables["127.0.0.1:5000"]
    assert local["location"] == "127.0.0.1:5000" and local["insecure"] is True
    assert local["mirror"] == [{"location": "10.99.0.1:5000", "insecure": True}]


def test_the_hosts_registry_view_has_no_mirror_of_itself() -> None:
    conf = tomllib.loads(registries_conf("127.0.0.1:5000"))
    tables = {t["prefix"]: t for t in conf["registry"]}
    assert tables["docker.io"]["location"] == "127.0.0.1:5000"
    assert "mirror" not in tables["127.0.0.1:5000"]


def test_the_stand_in_serves_every_port_and_ignores_its_arguments() -> None:
    image = parse_name("redis:alpine")
    script = _stand_in_script(image, (6379, 8080))
    assert script.startswith("#!/bin/sh\n")
    assert "for port in 6379 8080; do" in script
    assert 'httpd -f -p "$port" -h /www' in script
    assert "$@" not in script and "$1" not in script
    assert "trap 'kill $pids 2>/dev/null; exit 0' TERM INT" in script
    assert stand_in_label(image, (6379, 8080)) == "docker.io/library/redis:alpine ports=6379,8080"
    assert STAND_IN_LABEL == "com.shoal.lab.stand-in"


def test_the_cli_refuses_a_bad_stand_in_before_touching_anything(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--stand-in", "redis:alpine=6379", "--stand-in", "ghcr.io/x/y=80"]) == 2
    err = capsys.readouterr().err
    assert "--stand-in ghcr.io/x/y: stand-ins are for Docker Hub names" in err
