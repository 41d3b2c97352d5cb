"""PodmanOptions (worker/podman.py) and the lab's storage helpers (lab/podstore.py):
pure logic, no podman."""
from __future__ import annotations

from pathlib import Path

import pytest

from lab.podstore import NodeStorage, _unescape
from worker.podman import ENV_HOME, ENV_ROOT, ENV_RUNROOT, PodmanOptions


def test_defaults_are_the_hosts_storage() -> None:
    options = PodmanOptions.from_env({})
    assert options == PodmanOptions()
    assert options.command() == ["podman"]
    assert options.to_env() == {}
    assert options.environ({"HOME": "/root", "PATH": "/bin"}) == {"HOME": "/root", "PATH": "/bin"}


def test_from_env_round_trip_and_arguments() -> None:
    env = {ENV_ROOT: "/s/root", ENV_RUNROOT: "/s/run", ENV_HOME: "/s/home", "OTHER": "x"}
    options = PodmanOptions.from_env(env)
    assert options == PodmanOptions("/s/root", "/s/run", "/s/home")
    assert PodmanOptions.from_env(options.to_env()) == options
    assert options.command("/usr/bin/podman") == ["/usr/bin/podman", "--root", "/s/root",
                                                  "--runroot", "/s/run"]
    assert options.environ({"HOME": "/root"})["HOME"] == "/s/home"


@pytest.mark.parametrize("var", [ENV_ROOT, ENV_RUNROOT, ENV_HOME])
def test_relative_paths_are_refused_naming_the_variable(var: str) -> None:
    with pytest.raises(ValueError, match=var):
        PodmanOptions.from_env({var: "relative/dir"})


def test_node_storage_layout_and_registry_view(tmp_path: Path) -> None:
    storage = NodeStorage(tmp_path / "podman" / "worker1")
    storage.prepare("10.99.7.1:5000")
    options = storage.options
    assert options.root == str(storage.base / "root")
    assert len(options.run_root) <= 50 and options.run_root != NodeStorage(tmp_path).options.run_root
    assert Path(options.run_root).is_dir()
    text = (Path(options.home) / ".config/containers/registries.conf").read_text()
    assert 'prefix = "127.0.0.1:5000"' in text
    assert 'location = "10.99.7.1:5000"' in text.split("[[registry.mirror]]")[1]
    assert storage.remove() == []                    # nothing mounted: just the directory
    assert not storage.base.exists() and not Path(options.run_root).exists()
    assert storage.remove() == []                    # and again: nothing to do


def test_mountinfo_escapes_are_decoded() -> None:
    assert _unescape(r"/var/lib/with\040space/x") == "/var/lib/with space/x"
    assert _unescape("/plain") == "/plain"
