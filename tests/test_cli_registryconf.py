"""cli/registryconf.py: where podman's registries.conf sends a repository (pure), and
cli.registry resolving through it against the lab's real registry."""
from __future__ import annotations

from pathlib import Path

import pytest

from cli import registry as reg
from cli.registryconf import Endpoint, RegistryConfError, conf_path, endpoints

LAB_VIEW = """
unqualified-search-registries = ["docker.io"]
short-name-mode = "disabled"

[[registry]]
prefix = "127.0.0.1:5000"
location = "127.0.0.1:5000"
insecure = true

[[registry.mirror]]
location = "10.99.0.1:5000"
insecure = true

[[registry]]
prefix = "docker.io"
location = "10.99.0.1:5000"
insecure = true
"""


def test_the_labs_view_sends_hub_names_and_lab_names_to_the_underlay() -> None:
    assert endpoints(LAB_VIEW, "docker.io/library/redis") == [
        Endpoint("10.99.0.1:5000", "library/redis", True)]
    assert endpoints(LAB_VIEW, "127.0.0.1:5000/shoal/busybox") == [
        Endpoint("10.99.0.1:5000", "shoal/busybox", True),
        Endpoint("127.0.0.1:5000", "shoal/busybox", True)]
    assert endpoints(LAB_VIEW, "quay.io/x/y") == []


def test_the_longest_prefix_wins_at_a_path_boundary() -> None:
    text = """
[[registry]]
prefix = "example.com/team"
location = "mirror.local/team-copy"
[[registry]]
prefix = "example.com"
location = "mirror.local/all"
[[registry]]
prefix = "*.corp.example"
insecure = true
[[registry]]
location = "blocked.example"
blocked = true
"""
    assert endpoints(text, "example.com/team/app") == [
        Endpoint("mirror.local", "team-copy/app", False)]
    assert endpoints(text, "example.com/teamwork/app") == [
        Endpoint("mirror.local", "all/teamwork/app", False)]
    assert endpoints(text, "reg.corp.example/app") == [Endpoint("reg.corp.example", "app", True)]
    assert endpoints(text, "corp.example/app") == []
    with pytest.raises(RegistryConfError, match="blocked"):
        endpoints(text, "blocked.example/app")


def test_a_broken_file_is_an_error_that_says_so() -> None:
    with pytest.raises(RegistryConfError, match="not valid TOML"):
        endpoints("[[registry]\n", "docker.io/library/x")


def test_the_file_is_found_as_podman_finds_it(tmp_path: Path) -> None:
    named = tmp_path / "named.conf"
    assert conf_path({"CONTAINERS_REGISTRIES_CONF": str(named), "HOME": "/nowhere"}) == named
    user = tmp_path / ".config" / "containers" / "registries.conf"
    user.parent.mkdir(parents=True)
    user.write_text("")
    assert conf_path({"HOME": str(tmp_path)}) == user


def test_a_tag_is_resolved_where_the_conf_sends_it(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A name no DNS knows, sent by registries.conf to the lab registry (first to a
    mirror that is down): the digest is the lab registry's."""
    from lab import images
    images.ensure_registry()
    image = images.ensure_demo_image()
    want = reg.resolve_digest(image, timeout=10)
    conf = tmp_path / "registries.conf"
    conf.write_text(f"""
[[registry]]
prefix = "registry.invalid/mirrored"
location = "{images.REGISTRY_ADDR}/shoal"
insecure = true
[[registry.mirror]]
location = "127.0.0.1:9/nothing"
insecure = true
""")
    monkeypatch.setenv("CONTAINERS_REGISTRIES_CONF", str(conf))
    assert reg.resolve_digest("registry.invalid/mirrored/busybox:latest", timeout=5) == want
    with pytest.raises(reg.RegistryError, match="cannot reach registry registry.invalid"):
        reg.resolve_digest("registry.invalid/elsewhere/busybox:latest", timeout=5)
