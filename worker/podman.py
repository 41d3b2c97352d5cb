"""The production container runtime: podman, driven through its REST API.

Owns the `podman system service` process of a node (started on first use, in
its own session so it outlives an agent killed with -9; an already-live socket
is reused), where that podman keeps its containers and reads its registry
configuration (`PodmanOptions`, in `worker.podman_options`: the host's
defaults unless the node's config names its own storage, as the lab's nodes do),
the translation of `ContainerConfig` into libpod's SpecGenerator, the named
volumes task mounts need (created on first use, reused, never removed here),
image presence (pull when missing, remembered once seen), and the mapping of
podman's answers and failures onto `worker.runtime` types. Every call is
bounded by a timeout except the ones that wait for a container by design
(`wait`, `logs(follow=True)`).
"""
from __future__ import annotations

import asyncio
import builtins
import fcntl
import json
import logging
import os
import resource
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Sequence
from urllib.parse import quote

from worker.clock import wait_event
from worker.http_unix import (ConnectError, ConnectionLost, HTTPError, Response,
                              UnixHTTPClient)
from worker.podman_exits import ExitWatcher
from worker.podman_options import ENV_HOME, ENV_ROOT, ENV_RUNROOT, PodmanOptions  # re-exported
from worker.runtime import VolumeConfig   # task mounts' named volumes (issue 12)
from worker.podman_wire import (ExecOutput, LogDemuxer, container_spec, error_message,
                                json_stream, maybe_json, parse_time, signal_name,
                                signal_number, volume_create_body, volume_create_error,
                                check_volume_driver, proc_rlimits, image_user,
                                pull_auth_header)
from worker.podman_wire import image_health as wire_image_health
from worker import podman_volumes
from worker.runtime import (ContainerConfig, ContainerNotFound, ContainerState, ExecResult,
                            ImageHealth, ImagePullError, LogLine, Runtime, RuntimeError_,
                            VolumeInfo)

API = "/v4.0.0/libpod"


def _is_local_registry(image: str) -> bool:
    host = image.split("/", 1)[0] if "/" in image else ""
    return host.split(":", 1)[0] in ("127.0.0.1", "localhost", "[::1]")


def _sync_ping(socket_path: str, timeout: float = 1.0) -> bool:
    """Blocking check that the service answers on socket_path (used while spawning)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(socket_path)
            sock.sendall(f"GET {API}/_ping HTTP/1.1\r\nHost: podman\r\n"
                         "Connection: close\r\n\r\n".encode())
            return sock.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


INSPECT_ATTEMPTS = 6   # inspects racing an exit (podman's "no such process"), 0.31 s at most


class PodmanRuntime(Runtime):
    """`Runtime` backed by `podman system service` on `<state_dir>/podman.sock`,
    started with `options` (default: the host's podman storage and configuration)."""

    def __init__(self, state_dir: str, node_id: str = "", *, max_idle: int = 16,
                 request_timeout: float = 60.0, pull_timeout: float = 600.0,
                 service_start_timeout: float = 20.0, podman: str = "podman",
                 options: PodmanOptions | None = None,
                 log_path: str | None = None) -> None:
        self.state_dir = Path(state_dir)
        self.options = options or PodmanOptions()
        # the service's own log may name containers: callers keep it out of data dirs
        self.log_path = Path(log_path) if log_path else self.state_dir / "podman-service.log"
        self.socket_path = str(self.state_dir / "podman.sock")
        self.request_timeout = request_timeout
        self.pull_timeout = pull_timeout
        self.service_start_timeout = service_start_timeout
        self.podman = podman
        self.log = logging.LoggerAdapter(logging.getLogger(__name__), {"node": node_id})
        self._client = UnixHTTPClient(self.socket_path, max_idle=max_idle)
        self._service_lock = asyncio.Lock()
        self._service_checked = False
        self._images: set[str] = set()
        self._image_health: dict[str, ImageHealth | None] = {}   # by image reference
        self._image_users: dict[str, str] = {}                   # by image reference
        self._pulls: dict[tuple[str, str], asyncio.Future[None]] = {}   # (image, auth)
        self._version: str | None = None
        self._exits = ExitWatcher(self._subscribe_events, self.log)

    # ---- the service process ----------------------------------------------------

    @property
    def service_pid(self) -> int | None:
        """PID of the service process recorded in the state dir, if any."""
        try:
            return int((self.state_dir / "podman-service.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def _spawn_service(self) -> None:
        """Starts the service unless one answers; blocking, run in an executor."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / "podman-service.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if _sync_ping(self.socket_path, timeout=5.0):
                return
            try:
                os.unlink(self.socket_path)
            except FileNotFoundError:
                pass
            log_path = self.log_path
            with open(log_path, "ab") as out, open(os.devnull, "rb") as null:
                try:
                    process = subprocess.Popen(
                        [*self.options.command(self.podman), "system", "service",
                         "--time=0", f"unix://{self.socket_path}"],
                        stdin=null, stdout=out, stderr=out, close_fds=True,
                        start_new_session=True, env=self.options.environ())
                except OSError as err:
                    raise RuntimeError_(f"cannot start podman system service: {err}") from err
            (self.state_dir / "podman-service.pid").write_text(f"{process.pid}\n")
            self.log.info("started podman system service pid=%d on %s (storage %s)",
                          process.pid, self.socket_path,
                          self.options.root or "the host's default")
            deadline = time.monotonic() + self.service_start_timeout
            while time.monotonic() < deadline:
                if _sync_ping(self.socket_path):
                    return
                if process.poll() is not None:
                    break
                time.sleep(0.02)
            process.poll()
            tail = log_path.read_text(errors="replace")[-1500:].strip()
            state = (f"exited with {process.returncode}" if process.returncode is not None
                     else f"not answering after {self.service_start_timeout:g}s")
            raise RuntimeError_(f"podman system service {state}: {tail}")

    async def _ensure_service(self, force_check: bool = False) -> None:
        if self._service_checked and not force_check:
            return
        async with self._service_lock:
            if self._service_checked and not force_check:
                return
            await asyncio.get_running_loop().run_in_executor(None, self._spawn_service)
            self._service_checked = True

    # ---- requests --------------------------------------------------------------

    async def _request(self, method: str, path: str, *, params: Any = None,
                       json_body: Any = None, timeout: float | None = -1.0,
                       headers: dict[str, str] | None = None) -> Response:
        """Sends one request to the service, (re)starting the service when nobody answers."""
        if timeout is not None and timeout < 0:
            timeout = self.request_timeout
        await self._ensure_service()
        for attempt in (0, 1):
            try:
                return await self._client.request(method, API + path, params=params,
                                                  json_body=json_body, timeout=timeout,
                                                  headers=headers)
            except (ConnectError, ConnectionLost) as err:
                if attempt == 1:
                    raise RuntimeError_(f"podman service unreachable: {err}") from err
                self.log.warning("podman service not answering (%s); restarting it", err)
                await self._client.close()
                await self._ensure_service(force_check=True)
            except HTTPError as err:
                raise RuntimeError_(f"podman {method} {path}: {err}") from err
        raise AssertionError("unreachable")

    async def _body(self, response: Response, timeout: float | None = -1.0) -> bytes:
        if timeout is not None and timeout < 0:
            timeout = self.request_timeout
        try:
            return await asyncio.wait_for(response.read(), timeout)
        except asyncio.TimeoutError:
            response.close()
            raise RuntimeError_(f"podman response body not complete within {timeout:g}s") from None
        except HTTPError as err:
            raise RuntimeError_(f"podman response: {err}") from err

    async def _call(self, method: str, path: str, *, ok: tuple[int, ...] = (200,),
                    params: Any = None, json_body: Any = None,
                    container: str | None = None) -> tuple[int, Any]:
        """A request whose body is JSON; errors become RuntimeError_/ContainerNotFound."""
        response = await self._request(method, path, params=params, json_body=json_body)
        raw = await self._body(response)
        try:
            data = json.loads(raw) if raw.strip() else None
        except ValueError:
            data = raw.decode(errors="replace").strip()
        if response.status in ok:
            return response.status, data
        message = error_message(data, response.status, response.reason)
        if response.status == 404 and container is not None:
            raise ContainerNotFound(f"no such container: {container}")
        raise RuntimeError_(message)

    # ---- Runtime ----------------------------------------------------------------

    async def version(self) -> str:
        """Asked once per runtime object: podman answers in ~0.5 s (it runs conmon
        and crun to learn their versions)."""
        if self._version is None:
            _, data = await self._call("GET", "/version")
            found = f"podman {(data or {}).get('Version', 'unknown')}"
            for component in (data or {}).get("Components") or []:
                if component.get("Name") == "Podman Engine":
                    found = f"podman {component.get('Version', '')}".strip()
            self._version = found
        return self._version

    async def image_present(self, image: str) -> bool:
        """Whether podman's storage holds the image (asks podman, ignores the cache)."""
        status, _ = await self._call("GET", f"/images/{quote(image, safe='/:@')}/exists",
                                     ok=(204, 404))
        return status == 204

    async def ensure_image(self, image: str, registry_auth: str = "") -> None:
        if image in self._images:
            return
        # one pull per image and credentials: a pull without them must not fail one with
        key = (image, registry_auth)
        pending = self._pulls.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._ensure_image(image, registry_auth))
            self._pulls[key] = pending
            pending.add_done_callback(lambda _f: self._pulls.pop(key, None))
        await asyncio.shield(pending)

    async def _ensure_image(self, image: str, registry_auth: str = "") -> None:
        if not await self.image_present(image):
            await self._pull(image, registry_auth)
        self._images.add(image)

    async def image_health(self, image: str) -> ImageHealth | None:
        """The image's HEALTHCHECK from podman's image inspect (remembered per reference)."""
        if image not in self._image_health:
            await self._inspect_image(image)
        return self._image_health[image]

    async def _image_user(self, image: str) -> str:
        """The USER the image runs as ("" = root), from the same inspect."""
        if image not in self._image_users:
            await self._inspect_image(image)
        return self._image_users[image]

    async def _inspect_image(self, image: str) -> None:
        _, data = await self._call("GET", f"/images/{quote(image, safe='/:@')}/json")
        self._image_health[image] = wire_image_health(data or {})
        self._image_users[image] = image_user(data or {})

    async def _pull(self, image: str, registry_auth: str = "") -> None:
        params: dict[str, Any] = {"reference": image, "quiet": True}
        if _is_local_registry(image):
            params["tlsVerify"] = False
        header = pull_auth_header(registry_auth, image)
        self.log.info("pulling %s%s", image, " with registry credentials" if header else "")
        started = time.monotonic()
        response = await self._request("POST", "/images/pull", params=params,
                                       timeout=self.pull_timeout, headers=header)
        raw = await self._body(response, self.pull_timeout)
        reports = json_stream(raw)
        errors = [str(r["error"]) for r in reports if isinstance(r, dict) and r.get("error")]
        if response.status != 200 or errors:
            reason = errors[-1] if errors else error_message(
                reports[0] if reports else raw.decode(errors="replace"),
                response.status, response.reason)
            raise ImagePullError(f"pull {image}: {reason.strip()}")
        self.log.info("pulled %s in %.2fs", image, time.monotonic() - started)

    def _service_rlimits(self) -> dict[str, tuple[int, int]]:
        """nofile and nproc of the service process, which its containers inherit (podman
        sets its own on start); this process's own when the service's are unreadable."""
        try:
            return proc_rlimits(Path(f"/proc/{self.service_pid}/limits").read_text())
        except (OSError, ValueError):
            return {"nofile": resource.getrlimit(resource.RLIMIT_NOFILE),
                    "nproc": resource.getrlimit(resource.RLIMIT_NPROC)}

    async def create(self, config: ContainerConfig) -> str:
        # who the process runs as decides how podman applies capabilities
        user = config.user or (await self._image_user(config.image)
                               if config.capabilities is not None else "")
        spec = container_spec(config, self._service_rlimits() if config.ulimits else None,
                              user)
        for attempt in (0, 1):
            try:
                _, data = await self._call("POST", "/containers/create", ok=(201, 200),
                                           json_body=spec)
                return str(data["Id"])
            except RuntimeError_ as err:
                # the image was removed behind our back: forget it, pull, retry once
                if attempt == 0 and config.image in self._images and "image" in str(err).lower() \
                        and "not known" in str(err).lower():
                    self._images.discard(config.image)
                    await self.ensure_image(config.image, config.registry_auth)
                    continue
                raise RuntimeError_(f"create {config.name}: {err}") from err
        raise AssertionError("unreachable")

    # ---- named volumes of task mounts (issue 12) ----

    async def ensure_volume(self, volume: VolumeConfig) -> None:
        """Reuses the volume when podman has it (a different driver asked for is refused),
        creates it otherwise; a create that lost a race with another task's is a reuse."""
        path = f"/volumes/{quote(volume.name, safe='')}/json"
        for attempt in (0, 1):
            status, existing = await self._call("GET", path, ok=(200, 404))
            if status == 200:
                check_volume_driver(volume, existing)
                return
            body = volume_create_body(volume, os.sysconf("SC_PAGE_SIZE"),
                                      os.sysconf("SC_PHYS_PAGES"))
            response = await self._request("POST", "/volumes/create", json_body=body)
            data = maybe_json(await self._body(response))
            if response.status in (200, 201):
                self.log.info("created volume %s (driver %s)", volume.name, body["Driver"])
                return
            message = error_message(data, response.status, response.reason)
            if "already exists" not in message or attempt == 1:
                plugin = volume.driver not in ("", "local")   # which ones podman has
                info = (await self._call("GET", "/info"))[1] if plugin else None
                raise volume_create_error(volume, message, info)
        raise AssertionError("unreachable")

    async def start(self, container_id: str) -> None:
        try:
            await self._call("POST", f"/containers/{container_id}/start", ok=(204, 304),
                             container=container_id)
        except ContainerNotFound:
            raise
        except RuntimeError_ as err:
            raise RuntimeError_(f"start: {err}") from err

    async def _subscribe_events(self, params: dict[str, Any]) -> Response:
        """Opens podman's event stream (the headers arrive once it is subscribed)."""
        return await self._request("GET", "/events", params=params)

    async def wait(self, container_id: str,
                   on_running: Callable[[ContainerState], None] | None = None) -> ContainerState:
        """No long-poll per container: the runtime's one event stream (and a pidfd on the
        container's process) wake this wait, an inspect decides."""
        pid_gone_at = 0.0
        delay = 0.005
        while True:
            waiter = await self._exits.register(container_id)
            try:
                state = await self.inspect(container_id)
                if not state.running:
                    return state
                if on_running is not None:
                    on_running(state)
                    on_running = None
                if not pid_gone_at:
                    self._exits.watch_pid(waiter, state.pid)
                    await waiter.woken.wait()
                    if waiter.by_pid:
                        pid_gone_at = time.monotonic()
                elif time.monotonic() - pid_gone_at < 2.0:
                    # the process ended, podman has not noticed yet (conmon reaps, then
                    # writes the exit file): look again soon, or on an event
                    await wait_event(waiter.woken, delay)
                    delay = min(delay * 2, 0.25)
                else:
                    await waiter.woken.wait()
            finally:
                self._exits.unregister(waiter)

    async def _kill(self, container_id: str, signal: str) -> bool:
        """Sends a signal; False when the container is not running (nothing to do)."""
        response = await self._request("POST", f"/containers/{container_id}/kill",
                                       params={"signal": signal})
        raw = await self._body(response)
        if response.status in (200, 204):
            return True
        data = maybe_json(raw)
        if response.status == 404:
            raise ContainerNotFound(f"no such container: {container_id}")
        if response.status == 409 or "state improper" in str(data):
            return False
        message = error_message(data, response.status, response.reason)
        raise RuntimeError_(f"kill {signal}: {message}")

    async def _wait_for(self, container_id: str, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self.wait(container_id), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    async def stop(self, container_id: str, signal: str = "",
                   grace_period: float = 10.0) -> None:
        """`signal` "" means the container's own stop signal (SIGTERM unless configured)."""
        data = await self.inspect_raw(container_id)
        state = _state(data, container_id)
        if not state.running:
            return
        configured = str((data.get("Config") or {}).get("StopSignal") or "")
        first = signal_name(signal_number(signal or configured))
        if not await self._kill(container_id, first):
            return
        if await self._wait_for(container_id, max(grace_period, 0.0)):
            return
        self.log.info("%s ignored %s for %.1fs; sending SIGKILL", state.name, first, grace_period)
        if await self._kill(container_id, "SIGKILL") and \
                not await self._wait_for(container_id, self.request_timeout):
            raise RuntimeError_(f"container {state.name} still running after SIGKILL")

    async def remove(self, container_id: str) -> None:
        # libpod's name for "with its anonymous volumes" is `volumes` (`v` is the
        # Docker-compatible API's and is ignored here); named volumes always stay
        await self._call("DELETE", f"/containers/{container_id}", ok=(200, 204, 404),
                         params={"force": True, "volumes": True, "timeout": 0})

    async def inspect_raw(self, container_id: str) -> dict[str, Any]:
        """podman's full inspect document (HostConfig, Config, State ...).

        An inspect racing the container's exit can fail in podman itself ("read
        /proc/<pid>/cgroup: no such process"): it is asked again, a few times."""
        path = f"/containers/{container_id}/json"
        delay = 0.01
        for _ in range(INSPECT_ATTEMPTS - 1):
            try:
                return (await self._call("GET", path, container=container_id))[1]
            except RuntimeError_ as err:
                if "no such process" not in str(err):
                    raise
                self.log.debug("inspect of %s raced its exit (%s); again", container_id, err)
            await asyncio.sleep(delay)   # back-off before asking podman again
            delay *= 2
        return (await self._call("GET", path, container=container_id))[1]

    async def inspect(self, container_id: str) -> ContainerState:
        return _state(await self.inspect_raw(container_id), container_id)

    async def list(self, labels: dict[str, str]) -> list[ContainerState]:
        filters = {"label": [f"{k}={v}" for k, v in sorted(labels.items())]} if labels else {}
        _, data = await self._call("GET", "/containers/json",
                                   params={"all": True, "filters": filters})
        states = []
        for entry in data or []:
            status = entry.get("State") or "unknown"
            running = status == "running"
            names = entry.get("Names") or [""]
            states.append(ContainerState(
                id=entry.get("Id", ""), name=names[0], labels=dict(entry.get("Labels") or {}),
                status=status, running=running, exit_code=int(entry.get("ExitCode") or 0),
                pid=int(entry.get("Pid") or 0),
                started_at=float(entry.get("StartedAt") or 0),
                finished_at=0.0 if running else float(entry.get("ExitedAt") or 0)))
        return states

    async def logs(self, container_id: str, tail: int = -1,
                   follow: bool = False) -> AsyncIterator[LogLine]:
        params = {"stdout": True, "stderr": True, "timestamps": True, "follow": follow,
                  "tail": "all" if tail < 0 else tail}
        response = await self._request("GET", f"/containers/{container_id}/logs",
                                       params=params)
        if response.status != 200:
            raw = await self._body(response)
            if response.status == 404:
                raise ContainerNotFound(f"no such container: {container_id}")
            message = error_message(maybe_json(raw), response.status, response.reason)
            raise RuntimeError_(f"logs: {message}")
        demux = LogDemuxer()
        try:
            async for chunk in response.iter_chunks():
                for line in demux.feed(chunk):
                    yield line
        except HTTPError as err:
            raise RuntimeError_(f"logs: {err}") from err
        finally:
            response.close()
        for line in demux.flush():
            yield line

    async def exec(self, container_id: str, argv: Sequence[str], timeout: float,
                   max_output: int = 4096) -> ExecResult:
        """Creates an exec session, runs it attached (its output ends when the command
        ends) and inspects it for the exit code. Past `timeout` the session's process
        is killed (podman has no call for that: by its PID, when this agent may) and
        the result is a time-out."""
        _, data = await self._call("POST", f"/containers/{container_id}/exec", ok=(201, 200),
                                   json_body={"Cmd": list(argv), "AttachStdout": True,
                                              "AttachStderr": True, "AttachStdin": False,
                                              "Tty": False},
                                   container=container_id)
        exec_id = str((data or {}).get("Id", ""))
        if not exec_id:
            raise RuntimeError_(f"exec in {container_id[:12]}: no session ID in {data!r}")
        output = ExecOutput(max_output)
        try:
            async with asyncio.timeout(timeout):
                response = await self._request("POST", f"/exec/{exec_id}/start",
                                               json_body={"Detach": False, "Tty": False},
                                               timeout=None)
                if response.status != 200:
                    raw = await self._body(response)
                    if response.status == 404:
                        raise ContainerNotFound(f"no such container: {container_id}")
                    message = error_message(maybe_json(raw), response.status, response.reason)
                    raise RuntimeError_(f"exec start: {message}")
                try:
                    async for chunk in response.iter_chunks():
                        output.feed(chunk)
                except HTTPError as err:
                    raise RuntimeError_(f"exec output: {err}") from err
                return ExecResult(await self._exec_exit_code(exec_id), output.data())
        except TimeoutError:
            await self._exec_kill(exec_id)
            return ExecResult(-1, output.data(), timed_out=True)

    async def _exec_exit_code(self, exec_id: str) -> int:
        """The session's exit code, once podman has recorded that it ended."""
        delay = 0.005
        while True:
            _, data = await self._call("GET", f"/exec/{exec_id}/json")
            if not (data or {}).get("Running"):
                return int((data or {}).get("ExitCode") or 0)
            await asyncio.sleep(delay)   # the output ended, the exit is not recorded yet
            delay = min(delay * 2, 0.1)

    async def _exec_kill(self, exec_id: str) -> None:
        """Kills a session's process that outlived its timeout (best effort)."""
        try:
            _, data = await self._call("GET", f"/exec/{exec_id}/json")
            pid = int((data or {}).get("Pid") or 0)
            if pid > 0 and (data or {}).get("Running"):
                os.kill(pid, 9)
        except (RuntimeError_, OSError, ValueError) as err:
            self.log.info("exec %s: could not kill it after its timeout: %s", exec_id[:12], err)

    async def list_volumes(self) -> builtins.list[VolumeInfo]:
        """libpod's volume list (`GET /volumes/json`), sorted by name."""
        _, data = await self._call("GET", "/volumes/json")
        return podman_volumes.volumes_from(data)

    async def remove_volume(self, name: str) -> None:
        """`DELETE /volumes/{name}` without force: podman refuses while a container uses it."""
        response = await self._request("DELETE", f"/volumes/{quote(name, safe='')}")
        raw = await self._body(response)
        if response.status not in (200, 204):
            raise podman_volumes.removal_error(name, response.status, maybe_json(raw),
                                               response.reason)

    async def close(self) -> None:
        """Ends the event stream and closes idle connections; the service process keeps
        running for the next agent."""
        await self._exits.close()
        await self._client.close()


def _state(data: dict[str, Any], container_id: str) -> ContainerState:
    """ContainerState from podman's inspect document."""
    st = data.get("State") or {}
    error = st.get("Error") or ""
    if st.get("OOMKilled") and not error:
        error = "container killed: out of memory"
    running = bool(st.get("Running"))
    return ContainerState(
        id=data.get("Id", container_id), name=data.get("Name", ""),
        labels=dict((data.get("Config") or {}).get("Labels") or {}),
        status=st.get("Status") or "unknown", running=running,
        exit_code=int(st.get("ExitCode") or 0), pid=int(st.get("Pid") or 0),
        error=error, started_at=parse_time(st.get("StartedAt", "")),
        finished_at=0.0 if running else parse_time(st.get("FinishedAt", "")))
