"""Random requests to the Watch API (manager/watchapi.py), in process, on a real store.

The Watch servicer runs over a one-node raft store (pysyncobj on loopback, as
tests/test_store.py) that holds a few committed transactions, so that replays
(`resume_after_version`, `since`) have a history to read. Each example opens a
watch with a random WatchRequest (tests/protofuzz.py: random selectors with the
API's kinds, names and actions mixed with random text, random versions and
times) and waits for its first message for 20 ms: the watch is either open (a
message, or nothing yet) or refused with INVALID_ARGUMENT or OUT_OF_RANGE and a
message; never any other exception; the store is not written. 300 examples,
derandomized; about 10 s.
"""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Iterator

import grpc
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from manager.watchapi import WatchServicer
from proto import watch_pb2 as wpb
from raft import actions
from raft.store import Store
from tests.controlfuzz import Aborted, Context
from tests.protofuzz import messages
from tests.test_store import FAST, free_port, service

REFUSED = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.OUT_OF_RANGE}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    path = Path(tmp_path_factory.mktemp("watchfuzz"))
    s = Store("m1", str(path / "raft"), f"127.0.0.1:{free_port()}", tuning=FAST)
    s.start()
    s.wait_ready(10)
    for name in ("web", "db", "cache"):
        s.commit([actions.create(service(name))])
    yield s
    s.close()


async def first_message(servicer: WatchServicer, request: wpb.WatchRequest) -> object:
    """What a watcher sees first: a message, "open" (nothing within 20 ms) or a refusal."""
    stream = servicer.Watch(request, Context())
    try:
        return await asyncio.wait_for(stream.__anext__(), 0.02)
    except asyncio.TimeoutError:
        return "open"
    except Aborted as refusal:
        return refusal
    finally:
        await stream.aclose()


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(request=messages(wpb.WatchRequest))
def test_a_random_watch_opens_or_is_refused(store: Store, request: wpb.WatchRequest) -> None:
    version = store.version
    outcome = asyncio.run(first_message(WatchServicer(store), request))
    event(outcome.code.name if isinstance(outcome, Aborted) else
          "open" if outcome == "open" else "message")  # --hypothesis-show-statistics
    if isinstance(outcome, Aborted):
        assert outcome.code in REFUSED and outcome.details, outcome
    else:
        assert outcome == "open" or isinstance(outcome, wpb.WatchMessage), outcome
    assert store.version == version


def test_an_unknown_action_is_refused(store: Store) -> None:
    """A selector with only unknown actions matched nothing, silently (a typo such as
    "created" left the watcher waiting for ever)."""
    request = wpb.WatchRequest(selectors=[wpb.WatchSelector(kind="service",
                                                            actions=["update", "created"])])
    outcome = asyncio.run(first_message(WatchServicer(store), request))
    assert isinstance(outcome, Aborted)
    assert (outcome.code, outcome.details) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "unknown action 'created': use one of create, update, remove")
    request.selectors[0].actions[:] = ["UPDATE", "remove"]
    assert asyncio.run(first_message(WatchServicer(store), request)) == "open"
