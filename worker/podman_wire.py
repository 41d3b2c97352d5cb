"""Translation between Shoal's runtime types and libpod's JSON.

Owns: ContainerConfig -> libpod SpecGenerator (`container_spec`: mounts,
volumes, capabilities, sysctls, rlimits, extra hosts ...), VolumeConfig ->
libpod volume create (`volume_create_body`), the log
stream framing (`LogDemuxer`), podman's timestamps and signal names, and the
decoding of error bodies and pull progress streams, an image's HEALTHCHECK
(`image_health`). Pure functions, no I/O.
"""
from __future__ import annotations

import json
import math
import re
import signal as signal_module
from calendar import timegm
from typing import Any, Mapping

from proto.imageref import InvalidAuth, auth_for_image, decode_auth, has_credentials
from worker import caps
from worker.runtime import (HOST_NETWORK, TMPFS, VOLUME, ContainerConfig, ImageHealth, LogLine,
                            Mount, RuntimeError_, Ulimit, VolumeConfig)

_STREAMS = {1: "stdout", 2: "stderr"}
_TIME_RE = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?")


def parse_time(text: str) -> float:
    """Unix seconds of an RFC 3339 timestamp (any fraction length); 0.0 for Go's zero time."""
    match = _TIME_RE.match(text or "")
    if not match or match.group(1) == "0001":
        return 0.0
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    seconds = float(timegm((year, month, day, hour, minute, second, 0, 0, 0)))
    if match.group(7):
        seconds += float("0." + match.group(7))
    zone = match.group(8) or "Z"
    if zone != "Z":
        sign = -1 if zone[0] == "+" else 1
        digits = zone[1:].replace(":", "")
        seconds += sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return seconds


def signal_number(name: str) -> int:
    """SIGTERM, TERM, term or "15" -> 15; "" -> SIGTERM. Raises RuntimeError_ if unknown."""
    text = (name or "SIGTERM").strip().upper()
    if text.isascii() and text.isdigit():
        return int(text)
    if not text.startswith("SIG"):
        text = "SIG" + text
    try:
        return int(signal_module.Signals[text])
    except KeyError:
        raise RuntimeError_(f"unknown signal {name!r}") from None


def signal_name(number: int) -> str:
    try:
        return signal_module.Signals(number).name
    except ValueError:
        return str(number)


class LogDemuxer:
    """Splits libpod's log stream into lines.

    Frames are an 8-byte header (stream: 1 stdout, 2 stderr; three zero bytes;
    big-endian payload length) then the payload "<RFC 3339 time> <text>". A
    payload without a trailing newline is a partial line: it is joined to the
    next frame of the same stream.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._partial: dict[str, tuple[float, bytearray]] = {}

    def feed(self, chunk: bytes) -> list[LogLine]:
        self._buffer += chunk
        lines: list[LogLine] = []
        while len(self._buffer) >= 8:
            size = int.from_bytes(self._buffer[4:8], "big")
            if len(self._buffer) < 8 + size:
                break
            stream = _STREAMS.get(self._buffer[0], "stdout")
            payload = bytes(self._buffer[8:8 + size])
            del self._buffer[:8 + size]
            stamp, _, text = payload.partition(b" ")
            when = parse_time(stamp.decode(errors="replace"))
            if when == 0.0 and not _TIME_RE.match(stamp.decode(errors="replace")):
                text = payload                       # no timestamp prefix
            started, pending = self._partial.pop(stream, (when, bytearray()))
            pending += text
            *complete, rest = bytes(pending).split(b"\n")
            for piece in complete:
                lines.append(LogLine(stream, piece, started))
                started = when
            if rest:
                self._partial[stream] = (started, bytearray(rest))
        return lines

    def flush(self) -> list[LogLine]:
        """Whatever partial lines are left at the end of the stream."""
        left = [LogLine(stream, bytes(data), when)
                for stream, (when, data) in self._partial.items() if data]
        self._partial.clear()
        return left


class ExecOutput:
    """Collects an attached exec session's output, at most `limit` bytes.

    Without a TTY the stream is framed as the logs are (8-byte header, payload),
    but the payloads carry no timestamp; stdout and stderr are kept in the order
    they came.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._buffer = bytearray()
        self._data = bytearray()

    def feed(self, chunk: bytes) -> None:
        self._buffer += chunk
        while len(self._buffer) >= 8:
            size = int.from_bytes(self._buffer[4:8], "big")
            if len(self._buffer) < 8 + size:
                break
            room = self.limit - len(self._data)
            if room > 0:
                self._data += self._buffer[8:8 + min(size, room)]
            del self._buffer[:8 + size]

    def data(self) -> bytes:
        return bytes(self._data)


def image_health(data: Mapping[str, Any]) -> ImageHealth | None:
    """The HEALTHCHECK in libpod's image inspect document (top-level "Healthcheck",
    or the Docker config's), None when the image has none."""
    raw = data.get("Healthcheck") or data.get("HealthCheck") \
        or (data.get("Config") or {}).get("Healthcheck")
    if not isinstance(raw, Mapping) or not raw.get("Test"):
        return None

    def seconds(key: str) -> float:
        return max(0, int(raw.get(key) or 0)) / 1e9

    return ImageHealth(test=tuple(str(t) for t in raw["Test"]), interval=seconds("Interval"),
                       timeout=seconds("Timeout"), start_period=seconds("StartPeriod"),
                       start_interval=seconds("StartInterval"),
                       retries=max(0, int(raw.get("Retries") or 0)))


def container_spec(config: ContainerConfig,
                   inherited: Mapping[str, tuple[int, int]] | None = None,
                   user: str = "") -> dict[str, Any]:
    """libpod's SpecGenerator JSON for a ContainerConfig; `user` is who the process runs
    as (the config's user, else the image's; "" = root), see `capability_options`.

    Without ulimits a container inherits the node's limits (the node's podman is
    configured with no default ulimits). Given any, podman sets nofile and nproc
    to 1048576 unless they are among them, which fails where the node's hard limits
    are lower: `inherited` ((soft, hard) by name, -1 = unlimited) gives the node's
    own values for those two instead."""
    env = dict(item.split("=", 1) for item in config.env if "=" in item)
    spec: dict[str, Any] = {
        "name": config.name,
        "image": config.image,
        "labels": dict(config.labels),
        "env": env,
        "terminal": config.tty,
        "read_only_filesystem": config.read_only,
        "stop_signal": signal_number(config.stop_signal),
        "stop_timeout": max(0, math.ceil(config.stop_grace_period)),
        "log_configuration": log_configuration(config),
        "netns": _netns(config.network_ns),
    }
    if config.oom_score_adj:
        spec["oom_score_adj"] = int(config.oom_score_adj)
    if config.command:
        spec["entrypoint"] = list(config.command)
        spec["command"] = list(config.args)     # Docker semantics: image CMD dropped
    elif config.args:
        spec["command"] = list(config.args)
    for key, value in (("user", config.user), ("work_dir", config.workdir),
                       ("hostname", config.hostname)):
        if value:
            spec[key] = value
    if config.init:
        spec["init"] = True
    if config.groups:
        spec["groups"] = list(config.groups)
    limits: dict[str, Any] = {}
    if config.memory_bytes > 0:
        limits["memory"] = {"limit": int(config.memory_bytes)}
    if config.nano_cpus > 0:
        period = 100_000
        limits["cpu"] = {"period": period,
                         "quota": max(1000, config.nano_cpus * period // 1_000_000_000)}
    # Docker's 0 is "no limit"; left out, podman would apply its own default (2048).
    # podman's REST takes 0 as "max" (crun writes it so); -1 is written as is and the
    # kernel refuses it ("writing file pids.max: Invalid argument"), measured on podman 4.3.
    limits["pids"] = {"limit": max(0, int(config.pids_limit))}
    spec["resource_limits"] = limits
    mounts = [_mount(m) for m in config.mounts if m.type != VOLUME]
    if mounts:
        spec["mounts"] = mounts
    volumes = [_volume(m) for m in config.mounts if m.type == VOLUME]
    if volumes:
        spec["volumes"] = volumes
    if config.capabilities is not None:
        spec.update(capability_options(config.capabilities, config.capabilities_requested,
                                       user))
    if config.sysctls:
        spec["sysctl"] = dict(config.sysctls)
    if config.ulimits:
        given = {u.name for u in config.ulimits}
        kept = [Ulimit(name, soft, hard) for name, (soft, hard) in (inherited or {}).items()
                if name in PODMAN_DEFAULT_RLIMITS and name not in given]
        spec["r_limits"] = [{"type": u.name, "soft": _rlimit(u.soft), "hard": _rlimit(u.hard)}
                            for u in [*config.ulimits, *kept]]
    if config.hosts:
        spec["hostadd"] = host_entries(config.hosts)
    # podman gives a netns of mode "none" no /etc/resolv.conf at all (its CLI even
    # refuses --dns there): DNS settings only apply to a joined namespace.
    if not config.network_ns:
        return spec
    if config.dns_servers:
        spec["dns_server"] = list(config.dns_servers)
    if config.dns_search:
        spec["dns_search"] = list(config.dns_search)
    if config.dns_options:
        spec["dns_option"] = list(config.dns_options)
    return spec


def log_configuration(config: ContainerConfig) -> dict[str, Any]:
    """libpod's `log_configuration`: the driver, the k8s-file's size limit (conmon's
    --log-size-max: the file is started afresh when a write would pass it) and the tag."""
    log: dict[str, Any] = {"driver": config.log_driver}
    if config.log_max_size > 0:
        log["size"] = int(config.log_max_size)
    if config.log_tag:
        log["options"] = {"tag": config.log_tag}
    return log


def is_root(user: str) -> bool:
    """Whether podman runs a container's process of this user as root ("", root, 0)."""
    return user.split(":", 1)[0] in ("", "root", "0")


def capability_options(final: list[str], requested: list[str], user: str) -> dict[str, Any]:
    """cap_add/cap_drop that give the container the capability set `final`.

    For root the set is exact: everything dropped, the set added. podman makes every
    cap_add of a non-root process effective (and ambient), where Docker gives such a
    process no effective capability at all: a non-root process gets only the
    spec's own additions (`requested`, "ALL" included) effective, and its
    bounding set is podman's defaults less every capability `final` lacks.
    """
    if is_root(user):
        return {"cap_drop": ["ALL"], "cap_add": list(final)}
    everything = caps.ALL in requested
    return {"cap_drop": [c for c in caps.CAPABILITIES if c not in final],
            "cap_add": [c for c in final if everything or c in requested]}


def image_user(data: Mapping[str, Any]) -> str:
    """The USER of libpod's image inspect document ("" when none)."""
    return str((data.get("Config") or {}).get("User") or data.get("User") or "")


RLIM_INFINITY = 2**64 - 1
PODMAN_DEFAULT_RLIMITS = ("nofile", "nproc")   # what podman raises unless told otherwise


_PROC_LIMITS = {"Max open files": "nofile", "Max processes": "nproc"}


def proc_rlimits(text: str) -> dict[str, tuple[int, int]]:
    """nofile and nproc as (soft, hard) from a /proc/<pid>/limits text; -1 = unlimited.
    Raises ValueError when they are not both there."""
    found: dict[str, tuple[int, int]] = {}
    for line in text.splitlines():
        for label, name in _PROC_LIMITS.items():
            if line.startswith(label):
                soft, hard = line[len(label):].split()[:2]
                found[name] = (-1 if soft == "unlimited" else int(soft),
                               -1 if hard == "unlimited" else int(hard))
    if len(found) != len(_PROC_LIMITS):
        raise ValueError("no open files or processes limit in the limits text")
    return found


def _rlimit(value: int) -> int:
    """-1 (Docker's "unlimited") -> the kernel's RLIM_INFINITY."""
    return RLIM_INFINITY if value < 0 else value


def _mount(m: Mount) -> dict[str, Any]:
    """An OCI mount of libpod's SpecGenerator: a bind or a tmpfs (noexec, nosuid and
    nodev, as Docker mounts a tmpfs)."""
    if m.type == TMPFS:
        options = ["ro" if m.read_only else "rw", "noexec", "nosuid", "nodev"]
        if m.tmpfs_size > 0:
            options.append(f"size={m.tmpfs_size}")
        if m.tmpfs_mode:
            options.append(f"mode={m.tmpfs_mode:o}")
        return {"destination": m.target, "type": "tmpfs", "source": "tmpfs",
                "options": options}
    options = ["rbind", "ro" if m.read_only else "rw"]
    if m.propagation:
        options.append(m.propagation)
    return {"destination": m.target, "type": "bind", "source": m.source, "options": options}


def _volume(m: Mount) -> dict[str, Any]:
    """A named volume of libpod's SpecGenerator; an empty name makes podman create an
    anonymous one, which goes with the container (removal with volumes=true)."""
    options = ["ro" if m.read_only else "rw"]
    if m.no_copy:
        options.append("nocopy")
    return {"Name": m.source, "Dest": m.target, "Options": options}


def host_entries(lines: list[str]) -> list[str]:
    """Docker's extra hosts lines ("IP NAME [ALIAS...]") as libpod's hostadd ("NAME:IP",
    one per name, in order)."""
    entries: list[str] = []
    for line in lines:
        ip, *hostnames = line.split()
        entries += [f"{name}:{ip}" for name in hostnames]
    return entries


def volume_create_body(volume: VolumeConfig, page_size: int = 4096,
                       total_pages: int = 0) -> dict[str, Any]:
    """libpod's volume create request for a VolumeConfig.

    podman (4.x) takes a `size=` within the local driver's "o" option as a disk quota,
    which the node's filesystem may not support, where Docker passes "o" to mount(8)
    as it is. For a tmpfs volume the size is therefore given to the kernel as its
    equivalent in pages (nr_blocks=), so `o=size=1m` means what it means in Docker.
    `total_pages` (the node's RAM in pages) resolves a size given in percent.
    """
    options = dict(volume.options)
    if options.get("type") == "tmpfs" and options.get("o"):
        options["o"] = ",".join(_tmpfs_option(item, page_size, total_pages)
                                for item in options["o"].split(","))
    return {"Name": volume.name, "Driver": volume.driver or "local",
            "Label": dict(volume.labels), "Options": options}


def check_volume_driver(volume: VolumeConfig, existing: Mapping[str, Any]) -> None:
    """Raises RuntimeError_ when the volume podman has (its inspect document) was made
    with another driver than the one asked for ("" asks for none in particular)."""
    found = str(existing.get("Driver") or "local")
    if volume.driver and volume.driver != found:
        raise RuntimeError_(f'volume "{volume.name}" exists on this node with driver '
                            f'"{found}", not "{volume.driver}": remove it first or use '
                            "another name")


def volume_create_error(volume: VolumeConfig, message: str,
                        info: Mapping[str, Any] | None) -> RuntimeError_:
    """The error of a failed volume create; a missing driver is named with the ones
    podman has (`info`: its /info document)."""
    if volume.driver not in ("", "local") and "plugin" in message:
        drivers = ((info or {}).get("plugins") or {}).get("volume") or []
        return RuntimeError_(f'volume "{volume.name}": the volume driver "{volume.driver}" '
                             f"is not available on this node (it has: "
                             f"{', '.join(map(str, drivers)) or 'none'}); use the local "
                             "driver or install the plugin")
    return RuntimeError_(f'volume "{volume.name}": {message}')


_SIZE_SUFFIX = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def _tmpfs_option(item: str, page_size: int, total_pages: int) -> str:
    """One tmpfs mount option, with "size=N[kmgt%]" as "nr_blocks=<pages>"."""
    key, _, value = item.partition("=")
    if key.strip().lower() != "size":
        return item
    text = value.strip().lower()
    match = re.fullmatch(r"(\d+)([kmgt%]?)", text)
    if not match:
        raise RuntimeError_(f'invalid tmpfs volume option "{item}": expected size=<number>'
                            "[k|m|g|t|%]")
    number, suffix = int(match.group(1)), match.group(2)
    if suffix == "%":
        if total_pages <= 0:
            raise RuntimeError_(f'tmpfs volume option "{item}": the node\'s memory size is '
                                "unknown; give the size in bytes, k, m or g")
        return f"nr_blocks={total_pages * number // 100}"
    size = number * _SIZE_SUFFIX[suffix]
    return f"nr_blocks={-(-size // page_size)}"


def _netns(network_ns: str) -> dict[str, str]:
    """"" = own namespace with loopback only; "host" = the node's; else a netns path."""
    if not network_ns:
        return {"nsmode": "none"}
    if network_ns == HOST_NETWORK:
        return {"nsmode": "host"}
    return {"nsmode": "path", "value": network_ns}


def maybe_json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw.strip() else None
    except ValueError:
        return raw.decode(errors="replace").strip()


def json_stream(raw: bytes) -> list[Any]:
    """Decodes concatenated JSON documents (pull progress); non-JSON text is kept as str."""
    text = raw.decode(errors="replace")
    decoder = json.JSONDecoder()
    items: list[Any] = []
    index = 0
    while index < len(text):
        while index < len(text) and text[index].isspace():
            index += 1
        if index >= len(text):
            break
        try:
            item, index = decoder.raw_decode(text, index)
        except ValueError:
            items.append(text[index:].strip())
            break
        items.append(item)
    return items


def error_message(data: Any, status: int, reason: str = "") -> str:
    """The readable part of a libpod error body ({"cause", "message", "response"})."""
    if isinstance(data, dict):
        for key in ("message", "error", "cause"):
            if data.get(key):
                return str(data[key])
    if isinstance(data, str) and data:
        return data
    return f"HTTP {status} {reason}".strip()


def pull_auth_header(registry_auth: str, image: str) -> dict[str, str] | None:
    """The X-Registry-Auth header of a pull of `image` (podman's libpod API takes Docker's
    encoding: base64url JSON with username/password or identitytoken, and
    serveraddress), or None, and the pull is anonymous, when `registry_auth` carries
    no credentials (empty, not decodable, a server address alone) or carries them for
    another registry than `image`'s: one registry's password never goes to another
    (`proto.imageref.auth_for_image`)."""
    if not registry_auth:
        return None
    try:
        doc = decode_auth(registry_auth)
    except InvalidAuth:
        return None
    if not has_credentials(doc) or not auth_for_image(doc, image):
        return None
    return {"X-Registry-Auth": registry_auth}
