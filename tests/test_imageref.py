"""proto/imageref.py: Docker's image reference rules, Docker Hub's names, registry keys and
the X-Registry-Auth value; pure, so no registry is needed."""
from __future__ import annotations

import base64
import json

import pytest

from proto import imageref
from proto.imageref import parse_reference

# ---- references ----

@pytest.mark.parametrize("image,expected", [
    ("busybox", ("docker.io", "library/busybox", "latest", "")),
    ("busybox:1.36", ("docker.io", "library/busybox", "1.36", "")),
    ("user/app:v2", ("docker.io", "user/app", "v2", "")),
    ("docker.io/library/redis:alpine", ("docker.io", "library/redis", "alpine", "")),
    ("index.docker.io/redis", ("docker.io", "library/redis", "latest", "")),
    ("127.0.0.1:5000/shoal/busybox:latest",
     ("127.0.0.1:5000", "shoal/busybox", "latest", "")),
    ("localhost/app", ("localhost", "app", "latest", "")),
    ("registry.example.com/a/b/c:1", ("registry.example.com", "a/b/c", "1", "")),
    ("busybox:latest@sha256:" + "a" * 64,
     ("docker.io", "library/busybox", "latest", "sha256:" + "a" * 64)),
])
def test_references_split_as_docker_splits_them(image: str, expected: tuple) -> None:
    assert tuple(parse_reference(image)) == expected


@pytest.mark.parametrize("image,familiar", [
    ("busybox", "busybox:latest"),
    ("docker.io/library/redis:alpine", "redis:alpine"),
    ("user/app:v2", "user/app:v2"),
    ("127.0.0.1:5000/shoal/busybox", "127.0.0.1:5000/shoal/busybox:latest"),
])
def test_familiar_names_and_pinned_form(image: str, familiar: str) -> None:
    ref = parse_reference(image)
    assert ref.familiar() == familiar
    digest = "sha256:" + "b" * 64
    assert ref.pinned(digest) == f"{familiar}@{digest}"
    assert parse_reference(ref.pinned(digest)).digest == digest


@pytest.mark.parametrize("image,words", [
    ("", "empty"), ("Busybox", "lowercase"), ("busybox:bad tag", "tag"),
    ("busybox@sha256:xyz", "digest"), ("a//b", "lowercase"),
])
def test_bad_references_say_what_is_wrong(image: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_reference(image)


def test_registry_keys_and_login_servers_follow_docker() -> None:
    assert imageref.registry_key("docker.io") == "https://index.docker.io/v1/"
    assert imageref.registry_key("10.0.0.1:5443") == "10.0.0.1:5443"
    assert imageref.registry_host("") == "docker.io"
    assert imageref.registry_host("https://index.docker.io/v1/") == "docker.io"
    assert imageref.registry_host("https://reg.example.com:5443/v2/") == "reg.example.com:5443"
    assert imageref.registry_host("reg.example.com") == "reg.example.com"


@pytest.mark.parametrize("server", ["", "docker.io", "index.docker.io", "registry-1.docker.io",
                                    "https://index.docker.io/v1/", "https://index.docker.io",
                                    "https://registry-1.docker.io/v2/", "Docker.IO"])
def test_every_spelling_of_docker_hub_is_one_registry(server: str) -> None:
    assert imageref.registry_host(server) == "docker.io"
    assert imageref.registry_key(server) == imageref.HUB_KEY
    assert imageref.same_registry(server, "https://index.docker.io/v1/")


def test_other_registries_keep_their_host_and_port() -> None:
    assert imageref.hostname_of("https://r:5000/v2/") == "r:5000"
    assert imageref.registry_key("http://r:5000/v1/") == "r:5000"
    assert imageref.same_registry("https://r:5000", "r:5000")
    assert not imageref.same_registry("r:5000", "r:5001")
    assert not imageref.same_registry("r:5000", "docker.io")


@pytest.mark.parametrize("image,shown", [
    ("busybox:latest@sha256:" + "a" * 64, "busybox:latest"),
    ("docker.io/library/redis:7", "redis:7"),
    ("registry-1.docker.io/library/redis:7", "redis:7"),
    ("index.docker.io/user/app:2", "user/app:2"),
    ("127.0.0.1:5000/shoal/busybox:1", "127.0.0.1:5000/shoal/busybox:1"),
    ("busybox", "busybox"),                      # no tag: as it is
    ("busybox@sha256:" + "a" * 64, "busybox@sha256:" + "a" * 64),
    ("Foo/bar:1", "Foo/bar:1"),                  # not a reference: as it is
])
def test_familiar_is_how_tables_show_an_image(image: str, shown: str) -> None:
    assert imageref.familiar(image) == shown


def test_the_invalid_reference_message_is_dockers() -> None:
    with pytest.raises(ValueError, match="^invalid reference format: "):
        parse_reference("Foo/bar")


# ---- X-Registry-Auth ----

def _doc(value: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))


def test_auth_values_encode_and_decode() -> None:
    value = imageref.encode_auth("u", "p?>>", "reg:5000")
    assert "+" not in value and "/" not in value
    assert imageref.decode_auth(value) == _doc(value) == {
        "username": "u", "password": "p?>>", "serveraddress": "reg:5000"}
    token = imageref.encode_auth(imageref.TOKEN_USER, "t", imageref.HUB_KEY)
    assert imageref.decode_auth(token) == {"identitytoken": "t",
                                           "serveraddress": imageref.HUB_KEY}
    assert imageref.decode_auth(value.rstrip("=")) == _doc(value)       # padding optional
    anonymous = imageref.decode_auth(imageref.encode_auth("", "", "r:1"))
    assert anonymous == {"serveraddress": "r:1"} and not imageref.has_credentials(anonymous)
    for bad in ("%%%", base64.urlsafe_b64encode(b"[1]").decode(), "é"):
        with pytest.raises(imageref.InvalidAuth) as err:
            imageref.decode_auth(bad)
        assert bad not in str(err.value)


@pytest.mark.parametrize("server,image,matches", [
    ("reg:5000", "reg:5000/team/app:1", True),
    ("https://reg:5000/", "reg:5000/team/app@sha256:" + "c" * 64, True),
    ("reg:5000", "other:5000/team/app:1", False),
    ("reg:5000", "busybox", False),
    (imageref.HUB_KEY, "busybox", True),
    (imageref.HUB_KEY, "registry-1.docker.io/user/app:1", True),
    ("docker.io", "index.docker.io/library/redis", True),
    (imageref.HUB_KEY, "reg:5000/app", False),
    ("", "busybox", False),                       # no server named: never sent
    ("reg:5000", "Foo/bar", False),               # not a reference
])
def test_credentials_go_only_to_the_registry_they_name(server: str, image: str,
                                                       matches: bool) -> None:
    value = imageref.encode_auth("u", "p", server)
    assert imageref.auth_for_image(imageref.decode_auth(value), image) is matches
    assert imageref.auth_matches(value, image) is matches
    assert imageref.auth_matches("%%%", image) is False
