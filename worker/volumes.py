"""The node's named volumes, as the agent sees them: reporting them, removing them.

Owns `VolumeKeeper`: it lists the runtime's volumes (names, drivers, labels,
options, mountpoints; never their data) and hands the list to the session
(`run(send)`) when the session opens and whenever it changed. It looks again
after every `poke()` (the agent pokes when a task's container started or
ended, and after a removal) and every `rescan_period` seconds, because a
person may create volumes on the node by hand. Those waits use the event
loop's clock, not the agent's (they time nothing the session depends on).

It also carries out the volume requests the managers send on the session
stream (`requests(...)`): remove one volume, or prune the ones no container
uses and no task of this node needs. Each request is acted on once; its answer
is kept while the managers still list the request, so a request sent again
after a reconnection is answered again, never carried out twice.
"""
from __future__ import annotations

import asyncio
import logging
import os
import stat
from typing import Any, Awaitable, Callable, Sequence

from proto import dispatcher_pb2 as dpb
from proto import model
from proto import objects_pb2 as pb
from worker.clock import wait_event
from worker.runtime import Runtime, RuntimeError_, VolumeInfo, VolumeInUse, VolumeNotFound

RESCAN_PERIOD = 12.0   # seconds between two looks when nothing pokes the keeper

Send = Callable[[list[pb.NodeVolume]], Awaitable[Any]]
Answer = Callable[[dpb.VolumeResultRequest], Awaitable[Any]]
Result = dpb.VolumeResultRequest


def as_node_volume(volume: VolumeInfo) -> pb.NodeVolume:
    """A runtime volume as the node status carries it."""
    out = pb.NodeVolume(name=volume.name, driver=volume.driver, labels=volume.labels,
                        options=volume.options, mountpoint=volume.mountpoint)
    if volume.created_at:
        out.created_at.CopyFrom(model.timestamp(volume.created_at))
    return out


def disk_usage(path: str) -> int:
    """Bytes of the regular files under `path` (hard links counted once; 0 when it is
    missing). Blocking: run it in a thread."""
    if not path or not os.path.isdir(path):
        return 0
    total = 0
    seen: set[tuple[int, int]] = set()
    for top, _dirs, files in os.walk(path, onerror=lambda _err: None):
        for name in files:
            try:
                st = os.lstat(os.path.join(top, name))
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total


class VolumeKeeper:
    """Reports this node's volumes and carries out the managers' volume requests."""

    def __init__(self, runtime: Runtime, log: logging.LoggerAdapter,
                 rescan_period: float = RESCAN_PERIOD) -> None:
        self.runtime = runtime
        self.log = log
        self.rescan_period = rescan_period
        self._changed = asyncio.Event()
        self._acted: dict[str, Result | None] = {}   # request ID -> answer (None: running)
        self._jobs: set[asyncio.Task[None]] = set()
        self._last_error = ""

    def poke(self) -> None:
        """Something may have changed the volumes: look again soon."""
        self._changed.set()

    async def scan(self) -> list[pb.NodeVolume]:
        """The runtime's volumes now, sorted by name."""
        return [as_node_volume(v) for v in await self.runtime.list_volumes()]

    async def run(self, send: Send) -> None:
        """Sends the volume list now and after every change; never returns. A failed
        look or send is logged and tried again at the next look."""
        last: list[pb.NodeVolume] | None = None
        while True:
            self._changed.clear()
            try:
                current = await self.scan()
                if current != last:
                    await send(current)
                    last = current
                    self.log.debug("reported %d volumes", len(current))
                self._last_error = ""
            except asyncio.CancelledError:
                raise
            except Exception as err:  # the runtime or the session failed: try again later
                message = f"{type(err).__name__}: {err}"
                level = logging.DEBUG if message == self._last_error else logging.WARNING
                self.log.log(level, "cannot report the node's volumes (%s)", message)
                self._last_error = message
                last = None
            await wait_event(self._changed, self.rescan_period)   # cancellable at any time

    # ------------------------------------------------------------ requests --

    def requests(self, requests: Sequence[dpb.VolumeRequest], answer: Answer) -> None:
        """Takes the volume requests a session message lists: starts the new ones and
        answers again those already done (their first answer may have been lost)."""
        listed = {r.id for r in requests}
        self._acted = {rid: res for rid, res in self._acted.items()
                       if rid in listed or res is None}
        for request in requests:
            if request.id not in self._acted:
                self._acted[request.id] = None
                self._spawn(self._carry_out(request, answer))
            elif (done := self._acted[request.id]) is not None:
                self._spawn(self._answer(done, answer))

    async def _carry_out(self, request: dpb.VolumeRequest, answer: Answer) -> None:
        result = await self.execute(request)
        if request.id in self._acted:
            self._acted[request.id] = result
        self.poke()
        await self._answer(result, answer)

    async def _answer(self, result: Result, answer: Answer) -> None:
        try:
            await answer(result)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # the session broke: the request comes again on the next
            self.log.info("could not answer volume request %s (%s)", result.request_id, err)

    def _spawn(self, coro: Awaitable[None]) -> None:
        job: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)

    async def execute(self, request: dpb.VolumeRequest) -> Result:
        """Carries out one request on the runtime; the answer (session ID left empty)."""
        if request.op == dpb.VolumeRequest.PRUNE:
            return await self._prune(request)
        result = Result(request_id=request.id)
        try:
            await self.runtime.remove_volume(request.name)
            result.removed.append(request.name)
            self.log.info("removed volume %s", request.name)
        except VolumeNotFound as err:
            if not request.force:
                result.failure, result.message = Result.NOT_FOUND, str(err)
        except VolumeInUse as err:
            result.failure, result.message = Result.IN_USE, str(err)
        except RuntimeError_ as err:
            result.failure, result.message = Result.ERROR, str(err)
        return result

    async def _prune(self, request: dpb.VolumeRequest) -> Result:
        result = Result(request_id=request.id)
        keep = set(request.keep)
        errors: list[str] = []
        try:
            volumes = await self.runtime.list_volumes()
        except RuntimeError_ as err:
            result.failure, result.message = Result.ERROR, str(err)
            return result
        for volume in volumes:
            if volume.name in keep:
                continue
            size = await asyncio.to_thread(disk_usage, volume.mountpoint)
            try:
                await self.runtime.remove_volume(volume.name)
            except (VolumeInUse, VolumeNotFound):
                continue   # used by a container, or gone meanwhile: not prunable
            except RuntimeError_ as err:
                errors.append(str(err))
                continue
            result.removed.append(volume.name)
            result.reclaimed_bytes += size
        if result.removed:
            self.log.info("pruned volumes %s (%d bytes)", ", ".join(result.removed),
                          result.reclaimed_bytes)
        if errors and not result.removed:
            result.failure, result.message = Result.ERROR, "; ".join(errors)
        elif errors:
            self.log.warning("volume prune: %s", "; ".join(errors))
        return result

    async def close(self) -> None:
        """Cancels requests still being carried out."""
        for job in list(self._jobs):
            job.cancel()
        await asyncio.gather(*self._jobs, return_exceptions=True)
