"""The `swarm` CLI against the Control API served in process, for CLI tests without a lab.

`serve(monkeypatch)` gives a `tests.controlfuzz.Control` (the real ControlServicer over
an in-memory copy of the seeded store: nodes m1, w1, w2; networks front, back, spare,
ingress and the stack's app_default; services web on front, db on back, job, app_web
on app_default; secret pw, config conf) and makes every `Context` the CLI builds call
it. `run(capsys, *argv)` runs `swarm ARGV` and returns (exit code, stdout, stderr).
"""
from __future__ import annotations

from typing import Any, Optional

import pytest

from cli import context
from cli.client import RpcFailure
from cli.main import main
from raft.state import StoreState
from tests.controlfuzz import Control, seeded
from tests.memstore import MemoryStore


class InProcessClient:
    """`cli.client.Client.call` answered by `control`: a refusal is an RpcFailure, as a
    client sees it over the socket. Records the methods called."""

    def __init__(self, control: Control) -> None:
        self.control = control
        self.methods: list[str] = []

    def call(self, method: str, request: Any, timeout: Optional[float] = None) -> Any:
        self.methods.append(method)
        answer = self.control.call(method, request)
        if answer.refused:
            assert answer.code is not None
            raise RpcFailure(answer.code.name, answer.message)
        return answer.response

    def close(self) -> None:
        pass


def serve(monkeypatch: pytest.MonkeyPatch) -> InProcessClient:
    """A fresh copy of the seeded cluster; the CLI's calls go to it."""
    dump, data_dir = seeded()
    client = InProcessClient(Control(MemoryStore(StoreState.load(dump)), data_dir))
    monkeypatch.setattr(context, "Client", lambda host: client)
    return client


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["-H", "unix:///in-process/swarm.sock", *argv])
    out, err = capsys.readouterr()
    return code, out, err
