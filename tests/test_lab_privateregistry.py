"""lab/privateregistry.py without a registry: how it stops what a killed earlier run
left (the whole process group, SIGKILL when SIGTERM is ignored) and that no password
goes on a command line (htpasswd reads it on stdin, podman push reads an authfile
that exists, mode 0600, only during the push). Real processes, real htpasswd and podman."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from lab import privateregistry
from lab.privateregistry import PrivateRegistry, alive

PASSWORD = "s3cret-Pa55"

# ignores SIGTERM, starts a child (same group) that ignores it too, prints the child's pid
_STUBBORN = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"])
print(child.pid, flush=True)
time.sleep(120)
"""


def registry(tmp_path: Path) -> PrivateRegistry:
    reg = PrivateRegistry("127.0.0.1", "lab", PASSWORD, port=5999)
    reg.dir = tmp_path / "reg"
    reg.dir.mkdir()
    return reg


def gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_a_leftover_that_ignores_sigterm_is_killed_with_its_group(tmp_path: Path) -> None:
    reg = registry(tmp_path)
    # its command line names the config, as the registry's does
    leftover = subprocess.Popen([sys.executable, "-c", _STUBBORN, str(reg.dir / "config.yml")],
                                stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert leftover.stdout is not None
        child = int(leftover.stdout.readline())
        (reg.dir / "registry.pid").write_text(f"{leftover.pid}\n")
        reg._stop_leftover(timeout=0.5)
        assert gone_within(leftover.pid, 5), "the leader survived"
        assert gone_within(child, 5), "a process of its group survived"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(leftover.pid, signal.SIGKILL)
        leftover.wait(10)


def test_another_process_named_by_the_pid_file_is_left_alone(tmp_path: Path) -> None:
    reg = registry(tmp_path)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"],
                             start_new_session=True)
    try:
        (reg.dir / "registry.pid").write_text(f"{other.pid}\n")
        reg._stop_leftover(timeout=0.5)
        assert alive(other.pid)
    finally:
        other.kill()
        other.wait(10)


def test_htpasswd_gets_the_password_on_stdin(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    reg = registry(tmp_path)
    seen: list[list[str]] = []
    real_run = subprocess.run

    def spy(args: list[str], **kw: Any) -> subprocess.CompletedProcess:
        seen.append(list(args))
        return real_run(args, **kw)

    monkeypatch.setattr(privateregistry.subprocess, "run", spy)
    reg._htpasswd(tmp_path / "htpasswd")
    assert seen and all(PASSWORD not in " ".join(a) for a in seen)
    monkeypatch.undo()
    check = subprocess.run(["htpasswd", "-v", "-i", str(tmp_path / "htpasswd"), "lab"],
                           input=PASSWORD, capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr   # the file holds that password


def test_push_gives_podman_an_authfile_not_the_password(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    reg = registry(tmp_path)
    pushes: list[tuple[list[str], int, dict]] = []

    def spy(args: list[str], **kw: Any) -> subprocess.CompletedProcess:
        if args[:2] == ["podman", "push"]:
            path = Path(args[args.index("--authfile") + 1])
            pushes.append((list(args), stat.S_IMODE(path.stat().st_mode),
                           json.loads(path.read_text())))
        return subprocess.CompletedProcess(args, 0, "", "")   # no registry here

    monkeypatch.setattr(privateregistry.subprocess, "run", spy)
    assert reg.push("img:1", "team/app", "1") == "127.0.0.1:5999/team/app:1"
    [(args, mode, doc)] = pushes
    assert PASSWORD not in " ".join(args) and "--creds" not in args
    assert mode == 0o600
    assert list(doc["auths"]) == ["127.0.0.1:5999"]
    assert not Path(args[args.index("--authfile") + 1]).exists()   # removed after


def test_podman_reads_the_authfile(tmp_path: Path) -> None:
    reg = registry(tmp_path)
    with reg.authfile() as path:
        got = subprocess.run(["podman", "login", "--get-login", "--authfile", str(path),
                              reg.addr], capture_output=True, text=True, timeout=60)
    assert (got.returncode, got.stdout.strip()) == (0, "lab"), got.stderr
