"""The systemd unit (scripts/systemd/shoal@.service, installed by scripts/install-unit.sh)
passes `systemd-analyze verify`, and node.sdnotify speaks sd_notify's datagram protocol.

No daemon here: tests/test_e2e_sdnotify.py checks when a real node sends READY=1.
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from cli import environment
from cli.node_commands import node_config
from node.sdnotify import ENV, Notifier

REPO = Path(__file__).resolve().parent.parent
SWARM = Path(sys.executable).parent / "swarm"   # the venv's entry point, as setup.sh makes it


def install(unit_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(REPO / "scripts" / "install-unit.sh"), "--unit-dir", str(unit_dir),
                           "--swarm", str(SWARM), *extra],
                          capture_output=True, text=True, timeout=60)


def verify(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True,
                          text=True, timeout=60)


def test_installed_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    assert SWARM.exists(), f"{SWARM}: the venv has no swarm entry point"
    res = install(tmp_path, "/srv/shoal node")
    assert res.returncode == 0, res.stderr
    unit = tmp_path / "shoal@.service"
    text = unit.read_text()
    assert f"ExecStart={SWARM} daemon --foreground --data-dir %f\n" in text
    for line in ("Type=notify", "NotifyAccess=main", "Restart=on-failure", "KillMode=process"):
        assert f"\n{line}\n" in text, line
    assert "@SWARM@" not in text and "@REPO@" not in text
    # the command to enable it names the escaped data directory
    assert "systemctl enable --now shoal@srv-shoal\\x20node.service" in res.stdout
    # verify exits 0 even for lines it ignores: no output at all is the pass
    for path in (unit, tmp_path / "shoal@var-lib-shoal.service"):
        if not path.exists():
            path.symlink_to(unit.name)   # an instance: %f is /var/lib/shoal
        checked = verify(path)
        assert checked.returncode == 0 and checked.stdout + checked.stderr == "", \
            checked.stdout + checked.stderr


def test_verify_would_catch_a_broken_unit(tmp_path: Path) -> None:
    """The check above is not vacuous: a typo or a missing command is reported."""
    assert install(tmp_path).returncode == 0
    unit = tmp_path / "shoal@.service"
    unit.write_text(unit.read_text().replace("Type=notify", "Type=notifyy"))
    assert "Failed to parse service type" in verify(unit).stderr
    res = subprocess.run([str(REPO / "scripts" / "install-unit.sh"), "--unit-dir",
                          str(tmp_path), "--swarm", str(tmp_path / "nothing")],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 1 and "run scripts/setup.sh first" in res.stderr


def _bound(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + address[1:] if address.startswith("@") else address)
    sock.settimeout(5)
    return sock


@pytest.mark.parametrize("abstract", [False, True])
def test_notifier_sends_one_datagram_per_call(tmp_path: Path, abstract: bool) -> None:
    address = f"@shoal-test-{os.getpid()}" if abstract else str(tmp_path / "notify")
    with _bound(address) as sock:
        notifier = Notifier(address)
        assert notifier.notify("READY=1", "STATUS=serving")
        assert notifier.notify("STOPPING=1")
        assert sock.recv(4096) == b"READY=1\nSTATUS=serving"
        assert sock.recv(4096) == b"STOPPING=1"


def test_the_variable_goes_to_the_config_not_to_the_daemons_children(monkeypatch,
                                                                      tmp_path) -> None:
    monkeypatch.setenv(ENV, str(tmp_path / "notify"))
    config = node_config(argparse.Namespace(data_dir=str(tmp_path), foreground=True))
    assert config.notify_socket == str(tmp_path / "notify")
    environment.take_notify_socket()
    assert ENV not in os.environ                       # podman and containers do not get it
    notifier = Notifier(config.notify_socket)
    assert notifier.enabled
    assert notifier.environment_for_exec()[ENV] == str(tmp_path / "notify")   # a re-exec does
    assert not notifier.notify("READY=1")     # nobody listens there: reported, not raised
    assert not Notifier(None).notify("READY=1")
    assert ENV not in Notifier(None).environment_for_exec()


def _run_install(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["/bin/bash", str(REPO / "scripts" / "install-unit.sh"), *args],
                          capture_output=True, text=True, timeout=60, env=env)


def _fake_systemctl(bin_dir: Path, calls: Path) -> None:
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "systemctl"
    fake.write_text(f'#!/bin/sh\necho "$@" >> "{calls}"\n')
    fake.chmod(0o755)


def test_daemon_reload_runs_whenever_systemd_runs_whatever_the_unit_dir(tmp_path: Path) -> None:
    calls = tmp_path / "systemctl-calls"
    _fake_systemctl(tmp_path / "bin", calls)
    run_dir = tmp_path / "run-systemd-system"
    env = dict(os.environ, PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}",
               SHOAL_SYSTEMD_RUN_DIR=str(run_dir))
    args = ("--unit-dir", str(tmp_path / "units"), "--swarm", str(SWARM))
    res = _run_install(*args, env=env)
    assert res.returncode == 0, res.stderr
    assert not calls.exists()
    assert "systemd is not the running service manager here" in res.stdout
    run_dir.mkdir()     # now systemd runs: a unit written elsewhere still gets the reload
    res = _run_install(*args, env=env)
    assert res.returncode == 0, res.stderr
    assert calls.read_text() == "daemon-reload\n"
    assert "systemd reloaded" in res.stdout and "not the running" not in res.stdout


@pytest.mark.parametrize("option", ["--unit-dir", "--swarm"])
def test_an_option_without_its_value_says_so(tmp_path: Path, option: str) -> None:
    res = _run_install(option, env=dict(os.environ))
    assert res.returncode == 2
    assert f"{option} needs a" in res.stderr and "unbound" not in res.stderr


def test_a_bar_or_ampersand_in_a_path_goes_into_the_unit_verbatim(tmp_path: Path) -> None:
    odd = tmp_path / "a|b&c\\d"
    odd.mkdir()
    swarm = odd / "swarm"
    swarm.symlink_to(SWARM)
    res = install(odd / "units", "--swarm", str(swarm))   # the later --swarm wins
    assert res.returncode == 0, res.stderr
    text = (odd / "units" / "shoal@.service").read_text()
    assert f"\nExecStart={swarm} daemon --foreground --data-dir %f\n" in text


def test_without_systemd_escape_it_fails_before_installing(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("dirname", "sed", "mkdir", "mv", "cat"):   # all it needs but systemd-escape
        found = subprocess.run(["/bin/sh", "-c", f"command -v {tool}"], capture_output=True,
                               text=True).stdout.strip()
        (bin_dir / tool).symlink_to(found)
    res = _run_install("--unit-dir", str(tmp_path / "units"), "--swarm", str(SWARM),
                       env=dict(os.environ, PATH=str(bin_dir)))
    assert res.returncode == 1
    assert "systemd-escape not found" in res.stderr
    assert "installed" not in res.stdout
    assert not (tmp_path / "units" / "shoal@.service").exists()
