"""Validation of one service of a compose file into a `model.Service`.

Owns the service keys Shoal accepts (each one representable in its service
spec), their forms (short and long ports, volumes, secrets; lists or
mappings), Docker's lists of keys a swarm ignores with a warning or refuses,
and the keys Docker accepts that Shoal cannot represent yet (refused, never
dropped). Values the manager would refuse are refused here with its rules
(cli/compose/rules.py). Env files are read through the injected reader and folded into
`environment` as Docker does (the file's values first, `environment` over
them).
"""
from __future__ import annotations

import shlex
from typing import Any, Callable, Optional

from cli.compose import rules
from cli.compose import values as v
from cli.compose.deploy import read_deploy
from cli.compose.errors import Collector, ComposeError, join_path
from cli.compose.model import (FileRef, Healthcheck, Logging, Port, Service, ServiceMount,
                               ServiceNetwork, Ulimit)
from cli.compose.paths import absolute, read_env_file
from cli.containeropts import LOG_DRIVERS, ULIMIT_NAMES, normalize_capability, parse_host
from cli.parsing import UsageError
from proto import logrules
from proto.mountrules import MAX_FILE_MODE

Reader = Callable[[str], str]

# Docker's lists (cli/compose/types): keys a swarm ignores with a warning, and keys it refuses.
UNSUPPORTED = ("build", "cgroupns_mode", "cgroup_parent", "devices", "domainname",
               "external_links", "ipc", "links", "mac_address", "network_mode", "pid",
               "privileged", "restart", "security_opt", "shm_size", "userns_mode")
DEPRECATED = {
    "container_name": "Setting the container name is not supported.",
    "expose": "Exposing ports is unnecessary - services on the same network can access each "
              "other's containers on any port.",
}
FORBIDDEN = {
    "extends": "Support for `extends` is not implemented yet.",
    "volume_driver": "Instead of setting the volume driver on the service, define a volume "
                     "using the top-level `volumes` option and specify the driver there.",
    "volumes_from": "To share a volume between services, define it using the top-level "
                    "`volumes` option and reference it from each service that shares it using "
                    "the service-level `volumes` option.",
    "cpu_quota": "Set resource limits using deploy.resources",
    "cpu_shares": "Set resource limits using deploy.resources",
    "cpuset": "Set resource limits using deploy.resources",
    "mem_limit": "Set resource limits using deploy.resources",
    "memswap_limit": "Set resource limits using deploy.resources",
}
# Compose 3.x keys with no field in Shoal's service spec: refused with the reason.
NOT_REPRESENTABLE = {
    "stdin_open": "a service's containers get no open standard input in Shoal",
    "isolation": "Shoal runs Linux containers with the default isolation only",
    "credential_spec": "credential specs are a Windows feature",
}
DEPENDS_ON_WARNING = ("Ignoring depends_on: the services of a stack start in any order (as "
                      "in Docker Swarm); make each one wait for what it needs")
SERVICE_KEYS = ("image", "command", "entrypoint", "environment", "env_file", "labels",
                "hostname", "user", "working_dir", "init", "read_only", "tty", "stop_signal",
                "stop_grace_period", "dns", "dns_search", "dns_opt", "group_add",
                "extra_hosts", "cap_add", "cap_drop", "sysctls", "ulimits", "tmpfs", "ports",
                "networks", "secrets", "configs", "volumes", "healthcheck", "logging",
                "deploy", "depends_on", "oom_score_adj")
PORT_FORMS = ('expected [PUBLISHED:]TARGET[/PROTOCOL] such as "8080:80" or "8080:80/udp", '
              "or the long form {target, published, protocol, mode}")
_SHORT_VOLUME_MODES = ("ro", "rw", "nocopy", "z", "Z", "rprivate", "private", "rshared",
                       "shared", "rslave", "slave")


def read_service(name: str, raw: Any, path: str, workdir: str, env: dict[str, str],
                 reader: Reader, errors: Optional[Collector] = None) -> Service:
    """One service's mapping (already interpolated; the Docker-ignored keys removed).

    Each key is checked on its own: with `errors`, every problem is kept there (a key
    that fails stays unset) and the service is returned; without, they are raised."""
    own = Collector() if errors is None else errors
    section = v.mapping(raw, path, SERVICE_KEYS, errors=own)
    svc = Service(name=name)
    readers = _readers(workdir, env)
    for key, value in section.items():
        if key in readers:
            with own:
                setattr(svc, key, readers[key](value, join_path(path, key)))
    if section.get("deploy") is not None:   # `deploy:` with nothing under it is allowed
        svc.deploy = read_deploy(section["deploy"], join_path(path, "deploy"), own)
    if "depends_on" in section:
        value = section["depends_on"]
        if not isinstance(value, (list, dict)):
            own.add(v.wrong(value, join_path(path, "depends_on"),
                            "a list of service names or a mapping"))
    with own:
        svc.env_file = v.optional(section, "env_file", path, v.string_or_list)
    with own:
        svc.environment = _environment(section, path, svc.env_file, workdir, env, reader)
    if svc.env_file is not None:
        svc.env_file = [absolute(workdir, item) for item in svc.env_file]
    if errors is None:
        own.check()
    return svc


def _readers(workdir: str, env: dict[str, str]) -> dict[str, Callable[[Any, str], Any]]:
    """The reader of each service key that is one field of `Service` (same name)."""
    readers: dict[str, Callable[[Any, str], Any]] = {
        "image": v.string, "command": _shell_command, "entrypoint": _shell_command,
        "stop_grace_period": v.duration, "tmpfs": _tmpfs, "group_add": _groups,
        "oom_score_adj": lambda x, q: v.integer(x, q, minimum=-1000, maximum=1000),
        "labels": v.labels, "sysctls": _sysctls, "extra_hosts": _extra_hosts,
        "ulimits": _ulimits, "ports": _ports, "networks": _networks,
        "secrets": lambda x, q: _file_refs(x, q, "secret"),
        "configs": lambda x, q: _file_refs(x, q, "config"),
        "volumes": lambda x, q: _mounts(x, q, workdir, env),
        "healthcheck": _healthcheck, "logging": _logging,
        "stop_signal": lambda x, q: rules.stop_signal(v.string(x, q), q),
        "dns": lambda x, q: _each(v.string_or_list(x, q), q, rules.dns_server),
        "dns_search": lambda x, q: _each(v.string_or_list(x, q), q,
                                         lambda d, r: rules.dns_word(d, "DNS search domain", r)),
        "dns_opt": lambda x, q: _each(v.string_or_list(x, q), q,
                                      lambda d, r: rules.dns_word(d, "DNS option", r))}
    for key in ("hostname", "user", "working_dir"):
        readers[key] = v.string
    for key in ("init", "read_only", "tty"):
        readers[key] = v.boolean
    for key in ("cap_add", "cap_drop"):
        readers[key] = _capabilities
    return readers


def _each(items: list[str], path: str, check: Callable[[str, str], str]) -> list[str]:
    """Each item checked at its index (a single string given for a list is item 0)."""
    return [check(item, join_path(path, index)) for index, item in enumerate(items)]


def _groups(value: Any, path: str) -> list[str]:
    return _each(v.string_list(value, path, allow_numbers=True), path, rules.group)


def _sysctls(value: Any, path: str) -> dict[str, str]:
    out = v.labels(value, path)
    for key, item in out.items():
        rules.sysctl(key, item, join_path(path, key))
    return out


def _tmpfs(value: Any, path: str) -> list[str]:
    items = v.string_or_list(value, path)
    for item in items:
        if not item.startswith("/") or ":" in item:
            raise ComposeError(f'tmpfs target "{item}" must be an absolute path (for a size or '
                               "mode, use a volumes entry of type tmpfs)", path=path)
    return items


def _shell_command(value: Any, path: str) -> list[str]:
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:
            raise ComposeError(f'cannot split "{value}" into words: {exc}', path=path) from None
    if value is None:
        return []
    return v.string_list(value, path, allow_numbers=True)


def _capabilities(value: Any, path: str) -> list[str]:
    out = []
    for index, name in enumerate(v.string_list(value, path)):
        try:
            cap = normalize_capability(name)
        except UsageError as exc:
            raise ComposeError(str(exc), path=join_path(path, index)) from None
        out.append(rules.capability(cap, join_path(path, index)))
    return out


def _extra_hosts(value: Any, path: str) -> list[str]:
    """A list of HOST:IP (or HOST=IP) or a mapping HOST: IP, as "HOST:IP" lines."""
    if isinstance(value, dict):
        items = [f"{host}:{ip}" for host, ip in v.labels(value, path).items()]
    else:
        items = v.string_list(value, path)
    out = []
    for index, item in enumerate(items):
        try:
            address, host = parse_host(item, "extra_hosts").split(" ", 1)
        except UsageError as exc:
            raise ComposeError(str(exc).replace("--host", "extra_hosts"),
                               path=join_path(path, index)) from None
        out.append(f"{host}:{address}")
    return out


def _ulimits(value: Any, path: str) -> dict[str, Ulimit]:
    out = {}
    for name, item in v.mapping(value, path, any_key=True, extensions=False).items():
        item_path = join_path(path, name)
        if name not in ULIMIT_NAMES:
            raise ComposeError(f'unknown ulimit "{name}": expected one of '
                               f"{', '.join(ULIMIT_NAMES)}", path=item_path)
        if isinstance(item, dict):
            limits = v.mapping(item, item_path, ("soft", "hard"), extensions=False)
            for key in ("soft", "hard"):
                if key not in limits:
                    raise ComposeError(f'"{key}" is required', path=join_path(item_path, key))
            soft = v.integer(limits["soft"], join_path(item_path, "soft"), minimum=-1)
            hard = v.integer(limits["hard"], join_path(item_path, "hard"), minimum=-1)
            if hard != -1 and (soft == -1 or soft > hard):
                raise ComposeError(f"soft limit {soft} is greater than the hard limit {hard}",
                                   path=item_path)
            out[name] = Ulimit(soft=soft, hard=hard)
        else:
            single = v.integer(item, item_path, minimum=-1)
            out[name] = Ulimit(soft=single, hard=single, single=True)
    return out


def _ports(value: Any, path: str) -> list[Port]:
    if not isinstance(value, list):
        raise v.wrong(value, path, "a list of ports")
    out: list[Port] = []
    for index, item in enumerate(value):
        item_path = join_path(path, index)
        if isinstance(item, dict):
            out.append(_long_port(item, item_path))
            continue
        out.extend(_short_port(v.string(item, item_path, allow_numbers=True), item_path))
    return out


def _short_port(text: str, path: str) -> list[Port]:
    """[PUBLISHED:]TARGET[/PROTOCOL], each port a number or a range (8000-8010)."""
    ports, _, protocol = text.strip().partition("/")
    protocol = protocol or "tcp"
    if protocol not in ("tcp", "udp", "sctp"):
        raise ComposeError(f'invalid protocol "{protocol}" in port "{text}": expected tcp, udp '
                           "or sctp", path=path)
    parts = ports.split(":")
    if len(parts) > 2:
        raise ComposeError(f'invalid port "{text}": a host IP cannot be given for a service '
                           f"port (it listens on every address); {PORT_FORMS}", path=path)
    targets = _port_range(parts[-1], text, path)
    published = _port_range(parts[0], text, path) if len(parts) == 2 else []
    if published and len(published) != len(targets):
        raise ComposeError(f'invalid port "{text}": the published and target ranges differ in '
                           "size", path=path)
    return [Port(target=target, published=published[i] if published else None,
                 protocol=protocol) for i, target in enumerate(targets)]


def _port_range(part: str, text: str, path: str) -> list[int]:
    low, dash, high = part.partition("-")
    bounds = []
    for bound in (low, high) if dash else (low,):
        if not (bound.isascii() and bound.isdigit()):
            raise ComposeError(f'invalid port "{text}"; {PORT_FORMS}', path=path)
        if not 1 <= int(bound) <= 65535:
            raise ComposeError(f'invalid port "{text}": {int(bound)} is out of range 1-65535',
                               path=path)
        bounds.append(int(bound))
    if bounds[-1] < bounds[0]:
        raise ComposeError(f'invalid port "{text}": the range {part} is empty', path=path)
    return list(range(bounds[0], bounds[-1] + 1))


def _long_port(item: dict[str, Any], path: str) -> Port:
    section = v.mapping(item, path, ("target", "published", "protocol", "mode"),
                        extensions=False)
    if "target" not in section:
        raise ComposeError('"target" is required in the long form of a port',
                           path=join_path(path, "target"))
    port = Port(target=_port_number(section["target"], join_path(path, "target")))
    if "published" in section:
        port.published = _port_number(section["published"], join_path(path, "published"))
    if "protocol" in section:
        port.protocol = v.choice(section["protocol"], join_path(path, "protocol"),
                                 ("tcp", "udp", "sctp"))
    if "mode" in section:
        port.mode = v.choice(section["mode"], join_path(path, "mode"), ("ingress", "host"))
    return port


def _port_number(value: Any, path: str) -> int:
    number = v.integer(value, path)
    if not 1 <= number <= 65535:
        raise ComposeError(f"port {number} is out of range: ports are 1-65535", path=path)
    return number


def _networks(value: Any, path: str) -> dict[str, Optional[ServiceNetwork]]:
    if isinstance(value, list):
        return {name: None for name in v.string_list(value, path)}
    out: dict[str, Optional[ServiceNetwork]] = {}
    for name, item in v.mapping(value, path, any_key=True, extensions=False).items():
        item_path = join_path(path, name)
        if item is None:
            out[name] = None
            continue
        section = v.mapping(item, item_path, ("aliases", "driver_opts", "ipv4_address",
                                              "ipv6_address"))
        for key in ("driver_opts", "ipv4_address", "ipv6_address"):
            if key in section:
                raise v.not_supported(key, join_path(item_path, key),
                                      "Shoal allocates task addresses itself and its network "
                                      "attachments take aliases only")
        out[name] = ServiceNetwork(aliases=v.optional(section, "aliases", item_path,
                                                      v.string_list))
    return out


def _file_refs(value: Any, path: str, kind: str) -> list[FileRef]:
    if not isinstance(value, list):
        raise v.wrong(value, path, "a list of names or of source/target mappings")
    out = []
    for index, item in enumerate(value):
        item_path = join_path(path, index)
        if isinstance(item, str):
            out.append(FileRef(source=str(item)))
            continue
        section = v.mapping(item, item_path, ("source", "target", "uid", "gid", "mode"))
        if "source" not in section:
            raise ComposeError('"source" is required', path=join_path(item_path, "source"))
        ref = FileRef(source=v.string(section["source"], join_path(item_path, "source")))
        ref.target = v.optional(section, "target", item_path,
                                lambda x, q: rules.file_target(v.string(x, q), kind, q))
        for key in ("uid", "gid"):
            if key in section:
                text = v.string(section[key], join_path(item_path, key), allow_numbers=True)
                if not (text.isascii() and text.isdigit()) or int(text) > 0xFFFFFFFF:
                    raise ComposeError(f'must be a numeric {key} (0 to 4294967295), not '
                                       f'"{text}"', path=join_path(item_path, key))
                setattr(ref, key, text)
        if "mode" in section:
            ref.mode = v.integer(section["mode"], join_path(item_path, "mode"))
            if ref.mode > 0o7777:
                raise ComposeError(f"file mode {ref.mode:o} (octal) is out of range",
                                   path=join_path(item_path, "mode"))
        out.append(ref)
    return out


def _mounts(value: Any, path: str, workdir: str, env: dict[str, str]) -> list[ServiceMount]:
    if not isinstance(value, list):
        raise v.wrong(value, path, "a list of volumes")
    out = []
    for index, item in enumerate(value):
        item_path = join_path(path, index)
        if isinstance(item, str):
            mount = _short_mount(str(item), item_path)
        else:
            mount = _long_mount(item, item_path)
        if mount.type == "bind":
            if not mount.source:
                raise ComposeError("a bind mount needs a source path", path=item_path)
            source = mount.source
            if source.startswith("~"):
                if "HOME" not in env:
                    raise ComposeError(f'cannot expand "~" in "{source}": the environment has '
                                       "no HOME", path=item_path)
                source = env["HOME"] + source[1:]
            mount.source = absolute(workdir, source)
        if not mount.target.startswith("/"):
            raise ComposeError(f'target "{mount.target}" must be an absolute path',
                               path=item_path)
        out.append(mount)
    return out


def _short_mount(text: str, path: str) -> ServiceMount:
    """[SOURCE:]TARGET[:MODE[,MODE]]: a path source (/, ., ~) is a bind, a name a volume."""
    parts = text.split(":")
    if len(parts) > 3 or not all(parts[:2]):
        raise ComposeError(f'invalid volume "{text}": expected [SOURCE:]TARGET[:MODE] such '
                           'as "data:/var/lib/data:ro"', path=path)
    if len(parts) == 1:
        return ServiceMount(type="volume", target=parts[0])
    source, target = parts[0], parts[1]
    is_path = source.startswith(("/", ".", "~"))
    mount = ServiceMount(type="bind" if is_path else "volume", source=source, target=target)
    for mode in (parts[2].split(",") if len(parts) == 3 else ()):
        if mode not in _SHORT_VOLUME_MODES:
            raise ComposeError(f'invalid mode "{mode}" in volume "{text}": expected ro, rw, '
                               "nocopy or a bind propagation", path=path)
        if mode in ("ro", "rw"):
            mount.read_only = mode == "ro"
        elif mode == "nocopy":
            if mount.type != "volume":
                raise ComposeError(f'"nocopy" in "{text}" applies to named volumes only',
                                   path=path)
            mount.nocopy = True
        elif mode in ("z", "Z"):
            raise v.not_supported(f"{mode} (SELinux relabelling)", path)
        else:
            if mount.type != "bind":
                raise ComposeError(f'propagation "{mode}" in "{text}" applies to bind mounts '
                                   "only", path=path)
            mount.propagation = mode
    return mount


def _long_mount(item: Any, path: str) -> ServiceMount:
    section = v.mapping(item, path, ("type", "source", "target", "read_only", "consistency",
                                     "bind", "volume", "tmpfs"))
    if "type" not in section:
        raise ComposeError('"type" is required (volume, bind or tmpfs)',
                           path=join_path(path, "type"))
    kind = v.choice(section["type"], join_path(path, "type"), ("volume", "bind", "tmpfs"))
    if "target" not in section:
        raise ComposeError('"target" is required', path=join_path(path, "target"))
    mount = ServiceMount(type=kind, target=v.string(section["target"], join_path(path, "target")))
    mount.source = v.optional(section, "source", path, v.string) or ""
    mount.read_only = v.optional(section, "read_only", path, v.boolean) or False
    if "consistency" in section:
        raise v.not_supported("consistency", join_path(path, "consistency"),
                              "it only matters to Docker Desktop's file sharing")
    for key in ("bind", "volume", "tmpfs"):
        if key in section and key != kind:
            raise ComposeError(f'"{key}" options do not apply to a {kind} mount',
                               path=join_path(path, key))
    if "bind" in section:
        options = v.mapping(section["bind"], join_path(path, "bind"), ("propagation",))
        mount.propagation = v.optional(options, "propagation", join_path(path, "bind"),
                                       lambda x, q: v.choice(x, q, _SHORT_VOLUME_MODES[5:]))
    if "volume" in section:
        options = v.mapping(section["volume"], join_path(path, "volume"), ("nocopy",))
        mount.nocopy = v.optional(options, "nocopy", join_path(path, "volume"), v.boolean)
    if "tmpfs" in section:
        options = v.mapping(section["tmpfs"], join_path(path, "tmpfs"), ("size", "mode"))
        mount.tmpfs_size = v.optional(options, "size", join_path(path, "tmpfs"), v.size)
        mount.tmpfs_mode = v.optional(options, "mode", join_path(path, "tmpfs"),
                                      lambda x, q: v.integer(x, q, maximum=MAX_FILE_MODE))
    if kind == "tmpfs" and mount.source:
        raise ComposeError("a tmpfs mount takes no source", path=join_path(path, "source"))
    return mount


def _healthcheck(value: Any, path: str) -> Healthcheck:
    section = v.mapping(value, path, ("test", "interval", "timeout", "retries",
                                      "start_period", "start_interval", "disable"))
    check = Healthcheck()
    if "test" in section:
        test_path = join_path(path, "test")
        test = section["test"]
        if isinstance(test, str):
            check.test = ["CMD-SHELL", str(test)]
        else:
            check.test = v.string_list(test, test_path)
            if not check.test or check.test[0] not in ("CMD", "CMD-SHELL", "NONE"):
                raise ComposeError('a list test must start with "CMD", "CMD-SHELL" or "NONE"',
                                   path=test_path)
            if check.test[0] == "CMD-SHELL" and len(check.test) != 2:
                raise ComposeError('"CMD-SHELL" takes exactly one command string',
                                   path=test_path)
            if check.test[0] == "CMD" and len(check.test) < 2:
                raise ComposeError('"CMD" needs a command after it', path=test_path)
    for key in ("interval", "timeout", "start_period", "start_interval"):
        setattr(check, key, v.optional(section, key, path, v.duration))
    check.retries = v.optional(section, "retries", path,
                               lambda x, q: v.integer(x, q, maximum=(1 << 31) - 1))
    check.disable = bool(v.optional(section, "disable", path, v.boolean))
    if check.disable and check.test is not None and check.test != ["NONE"]:
        raise ComposeError("test and disable can't be set at the same time", path=path)
    return check


def _logging(value: Any, path: str) -> Logging:
    section = v.mapping(value, path, ("driver", "options"))
    logging = Logging()
    if "driver" in section:
        driver = v.string(section["driver"], join_path(path, "driver"))
        if driver not in LOG_DRIVERS:
            raise ComposeError(f'log driver "{driver}" is not supported: Shoal runs tasks '
                               "with podman, which keeps their output in its own log file "
                               "(json-file, local), in the node's journal (journald) or "
                               "nowhere (none); use one of json-file, local, journald, none",
                               path=join_path(path, "driver"))
        logging.driver = driver
    opts_path = join_path(path, "options")
    for key, item in v.mapping(section.get("options") or {}, opts_path, any_key=True,
                               extensions=False).items():
        text = "" if key not in logrules.OPTIONS else \
            v.string(item, join_path(opts_path, key), allow_numbers=True)
        try:    # the manager's own rules, so what loads is what it accepts
            logrules.podman_log(logging.driver or "", {key: text})
        except logrules.LogOptionError as exc:
            raise ComposeError(str(exc), path=join_path(opts_path, key)) from None
        logging.options[key] = text
    return logging


def _environment(section: dict[str, Any], path: str, env_files: Optional[list[str]],
                 workdir: str, env: dict[str, str], reader: Reader) -> dict[str, Optional[str]]:
    """env_file values, then `environment` over them; a name without value takes the
    client's environment value when it has one (as Docker does)."""
    merged: dict[str, Optional[str]] = {}
    for index, name in enumerate(env_files or ()):
        item_path = join_path(join_path(path, "env_file"), index)
        from_file = read_env_file(absolute(workdir, name), reader, item_path)
        for key in from_file:
            rules.env_name(key, item_path)
        merged.update(from_file)
    if "environment" in section:
        env_path = join_path(path, "environment")
        given = v.key_values(section["environment"], env_path, allow_none=True)
        for key in given:
            rules.env_name(key, join_path(env_path, key))
        merged.update(given)
    for key, value in merged.items():
        if not value and key in env:
            merged[key] = env[key]
    return merged
