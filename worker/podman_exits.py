"""Noticing container exits without one long-poll per container.

Owns the podman runtime's single events subscription (`GET /events`, container
`died`/`remove` events, streamed) and the per-container pidfd fast path. Both
only *wake* a waiter; the waiter then asks podman (inspect) whether the
container still runs, so a lost, duplicated or early wake-up never changes a
result, only when it is looked at.

Correctness rules:
- a waiter registers before it inspects, and registering returns only while a
  subscription is live, so an exit after the inspect always produces a wake-up;
- every (re)subscription asks for the events of the last seconds (`since`) and
  wakes every waiter, so an exit that happened while nobody was subscribed (the
  service restarted, the stream broke) is seen by the waiter's next inspect;
- a broken stream wakes every waiter too and is re-opened with a backoff.

The pidfd path (Linux ≥ 5.3, the agent sharing podman's PID namespace) makes
exit detection immediate: podman's file events backend is read by polling
(0.17-0.28 s late here), the pidfd fires the moment the process ends.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from typing import Any, Awaitable, Callable

from worker.http_unix import HTTPError, Response
from worker.runtime import RuntimeError_

Subscribe = Callable[[dict[str, Any]], Awaitable[Response]]

EXIT_EVENTS = ("died", "remove")
REPLAY_SECONDS = 2          # a (re)subscription asks for the events of this many seconds back


class Waiter:
    """One wait on one container: an event plus why it was set."""

    def __init__(self, container_id: str) -> None:
        self.container_id = container_id
        self.woken = asyncio.Event()
        self.by_pid = False        # the last wake-up came from the pidfd (process gone)
        self._pidfd: int | None = None

    def wake(self, by_pid: bool = False) -> None:
        self.by_pid = by_pid
        self.woken.set()


def event_container(event: Any) -> tuple[str, str]:
    """(container id, action) of one libpod event document; ("", "") if not a container's."""
    if not isinstance(event, dict):
        return "", ""
    kind = event.get("Type") or event.get("type") or ""
    if kind and kind != "container":
        return "", ""
    actor = event.get("Actor") or {}
    cid = str(actor.get("ID") or event.get("id") or event.get("ID") or "")
    action = str(event.get("Action") or event.get("status") or event.get("Status") or "")
    return cid, action


def split_json_lines(buffer: bytes) -> tuple[list[Any], bytes]:
    """Complete newline-terminated JSON documents in buffer, and the unfinished rest."""
    documents = []
    *lines, rest = buffer.split(b"\n")
    for line in lines:
        if line.strip():
            try:
                documents.append(json.loads(line))
            except ValueError:
                continue
    return documents, rest


class ExitWatcher:
    """Wakes the waiters of containers that may have stopped (see the module docstring)."""

    def __init__(self, subscribe: Subscribe, log: logging.LoggerAdapter, *,
                 max_backoff: float = 1.0) -> None:
        self._subscribe = subscribe
        self.log = log
        self.max_backoff = max_backoff
        self._waiters: dict[str, set[Waiter]] = {}
        self._live = False
        self._changed = asyncio.Event()          # set whenever _live or _error changes
        self._error: str = ""                    # why the newest subscription attempt failed
        self._attempts = 0                       # subscription attempts made so far
        self._task: asyncio.Task[None] | None = None
        self._closed = False                     # close() in progress
        self.subscriptions = 0                   # successful subscriptions (tests, diagnostics)
        self._pidfd_ok = hasattr(os, "pidfd_open")

    # ---- waiters ------------------------------------------------------------------

    async def register(self, container_id: str) -> Waiter:
        """A waiter for container_id, returned while a subscription is live.

        Raises RuntimeError_ when subscribing failed after this call started.
        """
        waiter = Waiter(container_id)
        self._waiters.setdefault(container_id, set()).add(waiter)
        try:
            self._ensure_reader()
            attempts = self._attempts
            while not self._live:
                self._changed.clear()
                if self._error and self._attempts > attempts:
                    raise RuntimeError_(f"podman events: {self._error}")
                await self._changed.wait()
        except BaseException:
            self.unregister(waiter)
            raise
        waiter.woken.clear()        # wakes before a live subscription are covered by the inspect
        return waiter

    def unregister(self, waiter: Waiter) -> None:
        self._close_pidfd(waiter)
        waiters = self._waiters.get(waiter.container_id)
        if waiters is not None:
            waiters.discard(waiter)
            if not waiters:
                del self._waiters[waiter.container_id]

    def watch_pid(self, waiter: Waiter, pid: int) -> bool:
        """Also wakes `waiter` when process `pid` ends; False if that cannot be watched."""
        if not self._pidfd_ok or pid <= 0 or waiter._pidfd is not None:
            return False
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            waiter.wake(by_pid=True)             # already gone
            return True
        except OSError as err:                   # no pidfd support, or not our PID namespace
            self.log.info("pidfd_open unavailable (%s); exits are seen through events only", err)
            self._pidfd_ok = False
            return False
        waiter._pidfd = fd
        loop = asyncio.get_running_loop()

        def fired() -> None:
            self._close_pidfd(waiter)
            waiter.wake(by_pid=True)

        loop.add_reader(fd, fired)
        return True

    def _close_pidfd(self, waiter: Waiter) -> None:
        fd, waiter._pidfd = waiter._pidfd, None
        if fd is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(fd)
            os.close(fd)

    def _wake(self, container_id: str) -> None:
        for waiter in self._waiters.get(container_id, ()):
            waiter.wake()

    def _wake_all(self) -> None:
        for waiters in self._waiters.values():
            for waiter in waiters:
                waiter.wake()

    # ---- the subscription ---------------------------------------------------------

    def _ensure_reader(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._read_forever(), name="podman-events")

    def _set(self, live: bool, error: str = "") -> None:
        self._live = live
        self._error = error
        self._changed.set()

    async def _read_forever(self) -> None:
        backoff = 0.05
        while True:
            self._attempts += 1
            params = {"stream": True, "since": str(int(time.time()) - REPLAY_SECONDS),
                      "filters": {"type": ["container"], "event": list(EXIT_EVENTS)}}
            try:
                response = await self._subscribe(params)
            except RuntimeError_ as err:
                self._set(False, str(err))
            else:
                if response.status != 200:
                    body = b""
                    with contextlib.suppress(Exception):
                        body = await asyncio.wait_for(response.read(), 5)
                    response.close()
                    self._set(False, f"HTTP {response.status}: {body[:300]!r}")
                else:
                    await self._consume(response)
                    backoff = 0.05
            self._wake_all()       # whatever happened while not subscribed: look again
            if self._closed or not self._waiters:
                return             # the next register() subscribes again
            self.log.warning("podman events stream ended (%s); resubscribing in %.2fs",
                             self._error or "closed by the service", backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff)

    async def _consume(self, response: Response) -> None:
        self.subscriptions += 1
        self._set(True)
        self._wake_all()           # reconcile: every waiter inspects its container again
        buffer = b""
        try:
            async for chunk in response.iter_chunks():
                documents, buffer = split_json_lines(buffer + chunk)
                for document in documents:
                    cid, action = event_container(document)
                    if cid and action in EXIT_EVENTS:
                        self._wake(cid)
            self._set(False, "stream closed by the service")
        except HTTPError as err:
            self._set(False, str(err))
        finally:
            response.close()
            if self._live:
                self._set(False, self._error or "stream abandoned")

    async def close(self) -> None:
        """Ends the subscription (a later register() opens a new one); waiters are woken."""
        self._closed = True
        task, self._task = self._task, None
        try:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            for waiters in list(self._waiters.values()):
                for waiter in list(waiters):
                    self._close_pidfd(waiter)
            self._set(False, "podman runtime closed")
            self._wake_all()
        finally:
            self._closed = False
