"""Converting a loaded `model.Stack` into the `StackDefinition` a deploy sends.

Owns the rules Docker's `stack deploy` applies to a compose file, in Shoal's
specs: object names (`<stack>_<key>`, unless the file gives `name:` or the
object is external: externals are listed by name in `external_*`, only those a
service uses), the labels every object carries (`com.docker.stack.namespace`;
services also `com.docker.stack.image`), the `<stack>_default` overlay network
of services that name no network, and each service key in the `ServiceSpec`
field `swarm service create` would fill, starting from the same defaults
(update and rollback configs, one replica, on-failure restarts for jobs).

Pure but for `reader`, which reads the secret and config files (their paths
are already absolute in the model). The loader refuses what a spec cannot
hold; a gap found here is refused too (`ComposeError` with the key's path),
never dropped, and so is what the manager would refuse once the names and
targets are known (two files on one path or a mount on one, a port published
twice, one ingress port in two services, overlapping subnets, two objects of
one name, an empty or too big secret or config file). Everything is sorted, so converting the same files twice gives
the same definition byte for byte (a redeploy then changes nothing).
"""
from __future__ import annotations

import ipaddress
import re
from typing import Callable, Iterable, Optional

from cli import containeropts as copts
from cli.compose import model as m
from cli.compose import rules
from cli.compose.errors import ComposeError, join_path
from cli.parsing import UsageError
from cli.specs import default_update_config
from proto import logrules, mountrules
from proto import objects_pb2 as pb

Reader = Callable[[str], bytes]

NAMESPACE_LABEL = "com.docker.stack.namespace"
IMAGE_LABEL = "com.docker.stack.image"
DEFAULT_NETWORK = "default"
DEFAULT_DRIVER = "overlay"
DEFAULT_FILE_MODE = 0o444
MAX_NAME = 63
MAX_SECRET_SIZE = 500 * 1024     # the manager's limits (swarmkit's)
MAX_CONFIG_SIZE = 1000 * 1024
_STACK_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")

_RESTART = {"any": pb.RestartPolicy.ANY, "none": pb.RestartPolicy.NONE,
            "on-failure": pb.RestartPolicy.ON_FAILURE}
_FAILURE_ACTIONS = {"pause": pb.UpdateConfig.PAUSE, "continue": pb.UpdateConfig.CONTINUE,
                    "rollback": pb.UpdateConfig.ROLLBACK}
_ORDERS = {"stop-first": pb.UpdateConfig.STOP_FIRST, "start-first": pb.UpdateConfig.START_FIRST}
_ENDPOINT_MODES = {"vip": pb.EndpointSpec.VIP, "dnsrr": pb.EndpointSpec.DNSRR}
_PROTOCOLS = {"tcp": pb.PortConfig.TCP, "udp": pb.PortConfig.UDP, "sctp": pb.PortConfig.SCTP}
_PUBLISH_MODES = {"ingress": pb.PortConfig.INGRESS, "host": pb.PortConfig.HOST}
_MOUNT_TYPES = {"volume": pb.Mount.VOLUME, "bind": pb.Mount.BIND, "tmpfs": pb.Mount.TMPFS}


def check_stack_name(name: str) -> str:
    """The stack's name, or ComposeError: it prefixes every object's name, so it takes
    the characters of one ([a-zA-Z0-9][a-zA-Z0-9_.-]*)."""
    if not name.strip(" \t\r\n\"'"):
        raise ComposeError(f'invalid stack name: "{name}"')
    if not _STACK_NAME.match(name):
        raise ComposeError(f'invalid stack name "{name}": only [a-zA-Z0-9][a-zA-Z0-9_.-] are '
                           "allowed (it prefixes the name of every object of the stack)")
    return name


def convert(stack: m.Stack, name: str, reader: Reader) -> pb.StackDefinition:
    """The definition of stack `name` deployed from `stack` (see the module docstring)."""
    check_stack_name(name)
    conv = _Converter(stack, name, reader)
    definition = pb.StackDefinition(name=name)
    definition.networks.extend(conv.networks())
    definition.external_networks.extend(conv.external_networks)
    definition.secrets.extend(conv.secrets())
    definition.configs.extend(conv.configs())
    definition.external_secrets.extend(conv.used_externals("secrets"))
    definition.external_configs.extend(conv.used_externals("configs"))
    definition.services.extend(conv.service(key, svc)
                               for key, svc in sorted(stack.services.items()))
    _check_ingress(stack)
    return definition


def _no_overlap(net: ipaddress.IPv4Network | ipaddress.IPv6Network, key: str,
                subnets: dict[ipaddress.IPv4Network | ipaddress.IPv6Network, str]) -> None:
    """The subnets of the stack's networks do not overlap (the manager allocates them)."""
    for other, owner in subnets.items():
        if net.overlaps(other):
            raise ComposeError(f"subnet {net} overlaps with subnet {other} of network {owner}",
                               path=join_path(join_path("networks", key), "ipam.config"))
    subnets[net] = key


def _check_published(ports: Iterable[pb.PortConfig], path: str) -> None:
    """A published port (with its protocol) is listed once in a service (the manager
    refuses it twice, whatever the mode)."""
    seen: set[tuple[int, int]] = set()
    for port in ports:
        key = (port.published_port, port.protocol)
        if port.published_port and key in seen:
            protocol = pb.PortConfig.Protocol.Name(port.protocol).lower()
            raise ComposeError(f"published port {port.published_port}/{protocol} is listed "
                               "twice", path=path)
        seen.add(key)


def _check_ingress(stack: m.Stack) -> None:
    """Two services of the stack cannot publish one port through the routing mesh."""
    owners: dict[tuple[int, str], str] = {}
    for key, svc in sorted(stack.services.items()):
        for port in svc.ports or ():
            if port.mode != "ingress" or not port.published:
                continue
            owner = owners.setdefault((port.published, port.protocol), key)
            if owner != key:
                raise ComposeError(
                    f"published port {port.published}/{port.protocol} is taken by service "
                    f"{owner} of the stack: publish service {key} on another port (or both "
                    "with mode: host)", path=join_path(join_path("services", key), "ports"))


def external_refs(stack: m.Stack) -> list[tuple[str, str, str]]:
    """(kind, key path, name) of each external network, secret and config the services
    use. Works on a stack that failed validation too (`ComposeError.partial`), so that a
    deploy can name the missing externals beside the file's own problems."""
    out: set[tuple[str, str, str]] = set()
    for svc in stack.services.values():
        for key in svc.networks or ():
            net = stack.networks.get(key)
            if net is not None and net.external:
                out.add(("network", join_path("networks", key), net.name or key))
        for kind in ("secrets", "configs"):
            declared = getattr(stack, kind)
            for ref in getattr(svc, kind) or ():
                obj = declared.get(ref.source)
                if obj is not None and obj.external:
                    out.add((kind[:-1], join_path(kind, ref.source), obj.name or ref.source))
    return sorted(out)


class _Converter:
    """One conversion: the stack, its name and the file reader."""

    def __init__(self, stack: m.Stack, name: str, reader: Reader) -> None:
        self.stack = stack
        self.name = name
        self.reader = reader
        self.external_networks: list[str] = []
        self.named: dict[tuple[str, str], str] = {}   # (section, name) -> key path

    # -------------------------------------------------------------- names ----

    def scoped(self, key: str, path: str, given: Optional[str] = None) -> str:
        """`<stack>_<key>`, or the name the file gives."""
        full = given or f"{self.name}_{key}"
        if len(full) > MAX_NAME:
            raise ComposeError(f'the name "{full}" is longer than {MAX_NAME} characters: use a '
                               "shorter stack name or key, or give the object a name:",
                               path=path)
        section = path.split(".", 1)[0]
        first = self.named.setdefault((section, full), path)
        if first != path:
            raise ComposeError(f'{first} and {path} are both named "{full}": give each its '
                               "own name", path=join_path(path, "name"))
        return full

    def labels(self, labels: dict[str, str]) -> dict[str, str]:
        return {**labels, NAMESPACE_LABEL: self.name}

    def network_name(self, key: str) -> str:
        net = self.stack.networks.get(key, m.Network())
        if net.external:
            return net.name or key
        return self.scoped(key, join_path("networks", key), net.name)

    # ----------------------------------------------------------- networks ----

    def used_networks(self) -> list[str]:
        """The network keys the services use (`default` for a service naming none), as
        Docker creates only those."""
        used: set[str] = set()
        for svc in self.stack.services.values():
            used.update(svc.networks or (DEFAULT_NETWORK,))
        return sorted(used)

    def networks(self) -> list[pb.NetworkSpec]:
        specs = []
        externals = set()
        subnets: dict[ipaddress.IPv4Network | ipaddress.IPv6Network, str] = {}
        for key in self.used_networks():
            net = self.stack.networks.get(key, m.Network())
            if net.external:
                externals.add(net.name or key)
                continue
            spec = pb.NetworkSpec(driver=net.driver or DEFAULT_DRIVER, internal=net.internal)
            spec.annotations.name = self.network_name(key)
            spec.annotations.labels.update(self.labels(net.labels))
            spec.driver_options.update(net.driver_opts)
            spec.ipam.extend(pb.IPAMConfig(subnet=subnet) for subnet in net.subnets)
            for subnet in net.subnets:
                _no_overlap(ipaddress.ip_network(subnet.strip()), key, subnets)
            specs.append(spec)
        self.external_networks = sorted(externals)
        return sorted(specs, key=lambda s: s.annotations.name)

    # --------------------------------------------------- secrets, configs ----

    def _file_objects(self, kind: str) -> list[tuple[str, bytes, dict[str, str]]]:
        """(name, data, labels) of the section's objects that are not external."""
        out = []
        for key, obj in sorted(getattr(self.stack, kind).items()):
            if obj.external:
                continue
            path = join_path(kind, key)
            if obj.file is None:
                raise ComposeError(f'a {kind[:-1]} needs "file" or "external: true"', path=path)
            try:
                data = self.reader(obj.file)
            except OSError as exc:
                reason = exc.strerror or str(exc)
                raise ComposeError(f'cannot read {kind[:-1]} file "{obj.file}": {reason}',
                                   path=join_path(path, "file")) from None
            limit = MAX_SECRET_SIZE if kind == "secrets" else MAX_CONFIG_SIZE
            if not data or len(data) > limit:
                raise ComposeError(f'{kind[:-1]} file "{obj.file}" is {len(data)} bytes: it '
                                   f"must hold 1 byte to {limit // 1024} KiB",
                                   path=join_path(path, "file"))
            out.append((self.scoped(key, path, obj.name), data, self.labels(obj.labels)))
        return sorted(out)

    def secrets(self) -> list[pb.SecretSpec]:
        specs = []
        for name, data, labels in self._file_objects("secrets"):
            spec = pb.SecretSpec(data=data)
            spec.annotations.name = name
            spec.annotations.labels.update(labels)
            specs.append(spec)
        return specs

    def configs(self) -> list[pb.ConfigSpec]:
        specs = []
        for name, data, labels in self._file_objects("configs"):
            spec = pb.ConfigSpec(data=data)
            spec.annotations.name = name
            spec.annotations.labels.update(labels)
            specs.append(spec)
        return specs

    def file_object_name(self, kind: str, key: str) -> str:
        obj = getattr(self.stack, kind)[key]
        if obj.external:
            return obj.name or key
        return self.scoped(key, join_path(kind, key), obj.name)

    def used_externals(self, kind: str) -> list[str]:
        """The names of the external secrets (or configs) the services use."""
        declared = getattr(self.stack, kind)
        names = {self.file_object_name(kind, ref.source)
                 for svc in self.stack.services.values()
                 for ref in getattr(svc, kind) or ()
                 if declared[ref.source].external}
        return sorted(names)

    # ----------------------------------------------------------- services ----

    def service(self, key: str, svc: m.Service) -> pb.ServiceSpec:
        path = join_path("services", key)
        spec = pb.ServiceSpec()
        spec.annotations.name = self.scoped(key, path)
        spec.annotations.labels.update(self.labels(svc.deploy.labels))
        spec.annotations.labels[IMAGE_LABEL] = svc.image or ""
        _mode(spec, svc.deploy, join_path(path, "deploy"))
        self.container(spec.task.container, svc, path)
        _resources(spec.task.resources, svc.deploy)
        _restart(spec.task.restart, svc.deploy.restart_policy)
        _placement(spec, svc.deploy, join_path(path, "deploy"))
        spec.task.networks.extend(self.attachments(key, svc))
        if svc.logging is not None:
            spec.task.log_driver = svc.logging.driver or ""
            spec.task.log_driver_options.update(logrules.with_driver_defaults(
                svc.logging.driver, svc.logging.options))
        spec.update.CopyFrom(_update_config(svc.deploy.update_config))
        spec.rollback.CopyFrom(_update_config(svc.deploy.rollback_config))
        job = spec.WhichOneof("mode") in ("replicated_job", "global_job")
        for given, word in ((svc.deploy.update_config, "update_config"),
                            (svc.deploy.rollback_config, "rollback_config")):
            if job and given is not None:
                raise ComposeError(f"{word} cannot be used with job modes: a job is run again "
                                   "by an update, never rolled out",
                                   path=join_path(join_path(path, "deploy"), word))
        if svc.deploy.endpoint_mode is not None:
            spec.endpoint.mode = _ENDPOINT_MODES[svc.deploy.endpoint_mode]
        spec.endpoint.ports.extend(_ports(svc.ports or ()))
        _check_published(spec.endpoint.ports, join_path(path, "ports"))
        if spec.endpoint.mode == pb.EndpointSpec.DNSRR and any(
                p.publish_mode == pb.PortConfig.INGRESS for p in spec.endpoint.ports):
            raise ComposeError("a port published through the routing mesh (mode ingress) "
                               "can't be used with endpoint_mode dnsrr: publish it with "
                               "mode: host", path=join_path(path, "ports"))
        return spec

    def container(self, c: pb.ContainerSpec, svc: m.Service, path: str) -> None:
        c.image = svc.image or ""
        c.labels.update(self.labels(svc.labels))
        c.command.extend(svc.entrypoint or ())
        c.args.extend(svc.command or ())
        c.env.extend(sorted(k if v is None else f"{k}={v}"
                            for k, v in svc.environment.items()))
        c.user = svc.user or ""
        c.dir = svc.working_dir or ""
        c.hostname = svc.hostname or ""
        c.stop_signal = svc.stop_signal or ""
        if svc.stop_grace_period is not None:
            c.stop_grace_period.nanos = svc.stop_grace_period
        c.init = bool(svc.init)
        c.oom_score_adj = svc.oom_score_adj or 0
        c.tty = bool(svc.tty)
        c.read_only = bool(svc.read_only)
        if svc.healthcheck is not None:
            c.healthcheck.CopyFrom(_healthcheck(svc.healthcheck))
        c.dns_nameservers.extend(svc.dns or ())
        c.dns_search.extend(svc.dns_search or ())
        c.dns_options.extend(svc.dns_opt or ())
        try:
            c.groups.extend(copts.check_group(g, "group_add") for g in svc.group_add or ())
            c.hosts.extend(dict.fromkeys(copts.parse_host(h, "extra_hosts")
                                         for h in svc.extra_hosts or ()))
            copts.create_capabilities(c, svc.cap_add or (), svc.cap_drop or ())
        except UsageError as exc:
            raise ComposeError(str(exc), path=path) from None
        c.sysctls.update(svc.sysctls)
        c.ulimits.extend(pb.Ulimit(name=n, soft=u.soft, hard=u.hard)
                         for n, u in sorted(svc.ulimits.items()))
        c.mounts.extend(self.mounts(svc, path))
        self.check_files(svc, c, path)
        c.secrets.extend(sorted((self.secret_ref(ref) for ref in svc.secrets or ()),
                                key=lambda r: (r.secret_name, r.target)))
        c.configs.extend(sorted((self.config_ref(ref) for ref in svc.configs or ()),
                                key=lambda r: (r.config_name, r.target)))

    def check_files(self, svc: m.Service, c: pb.ContainerSpec, path: str) -> None:
        """The secret and config files land on distinct paths, no mount on one of them
        (the manager's rule, checked with the targets the references get)."""
        files = []
        for kind, refs in (("secret", svc.secrets), ("config", svc.configs)):
            for index, ref in enumerate(refs or ()):
                key_path = join_path(join_path(path, kind + "s"), index)
                target = ref.target or ref.source
                files.append((f"{kind} {ref.source}",
                              rules.file_path(target, kind, key_path), key_path))
        rules.files_and_mounts(files, [mount.target for mount in c.mounts], path)

    def secret_ref(self, ref: m.FileRef) -> pb.SecretReference:
        """Docker's defaults: the target is the key (a file under /run/secrets), owner
        root, mode 0444."""
        out = pb.SecretReference(secret_name=self.file_object_name("secrets", ref.source),
                                 target=ref.target or ref.source)
        _owner(out, ref)
        return out

    def config_ref(self, ref: m.FileRef) -> pb.ConfigReference:
        """The target defaults to /<key>; a relative one hangs off / (as the manager
        stores it)."""
        target = ref.target or ref.source
        out = pb.ConfigReference(config_name=self.file_object_name("configs", ref.source),
                                 target=target if target.startswith("/") else "/" + target)
        _owner(out, ref)
        return out

    def attachments(self, key: str, svc: m.Service) -> list[pb.NetworkAttachmentConfig]:
        """The service's networks (`default` when it names none), each with the service's
        key as an alias besides its own (Docker's: `web` finds `<stack>_web`)."""
        wanted = svc.networks or {DEFAULT_NETWORK: None}
        out = []
        for net_key, config in wanted.items():
            aliases = list((config.aliases if config is not None else None) or ())
            if key not in aliases:
                aliases.append(key)
            out.append(pb.NetworkAttachmentConfig(target=self.network_name(net_key),
                                                  aliases=aliases))
        return sorted(out, key=lambda a: a.target)

    def mounts(self, svc: m.Service, path: str) -> list[pb.Mount]:
        """`volumes:` then `tmpfs:`, each checked by the rules `--mount` follows."""
        out: list[tuple[pb.Mount, str]] = []
        for index, given in enumerate(svc.volumes or ()):
            out.append((self.mount(given), join_path(join_path(path, "volumes"), index)))
        for index, target in enumerate(svc.tmpfs or ()):
            out.append((pb.Mount(type=pb.Mount.TMPFS, target=target),
                        join_path(join_path(path, "tmpfs"), index)))
        seen: set[str] = set()
        for mount, where in out:
            try:
                mountrules.check_mount(mount)
            except mountrules.MountError as exc:
                raise ComposeError(str(exc), path=where) from None
            target = mountrules.mount_target(mount.target)
            if target in seen:
                raise ComposeError(f"duplicate mount point: {mount.target} (two volumes or "
                                   "tmpfs entries have this target)", path=where)
            seen.add(target)
        return [mount for mount, _ in out]

    def mount(self, given: m.ServiceMount) -> pb.Mount:
        mount = pb.Mount(type=_MOUNT_TYPES[given.type], source=given.source,
                         target=given.target, read_only=given.read_only)
        if given.type == "bind":
            if given.propagation:
                mount.bind_options.propagation = given.propagation
        elif given.type == "tmpfs":
            if given.tmpfs_size is not None:
                mount.tmpfs_options.size_bytes = given.tmpfs_size
            if given.tmpfs_mode is not None:
                mount.tmpfs_options.mode = given.tmpfs_mode
        else:
            if given.nocopy:
                mount.volume_options.no_copy = True
            if given.source:
                volume = self.stack.volumes[given.source]
                if volume.external:
                    mount.source = volume.name or given.source
                else:
                    mount.source = self.scoped(given.source,
                                               join_path("volumes", given.source), volume.name)
                    options = mount.volume_options
                    options.labels.update(self.labels(volume.labels))
                    options.driver = volume.driver or ""
                    options.driver_options.update(volume.driver_opts)
        return mount


# ---------------------------------------------------------- service parts ----

def _mode(spec: pb.ServiceSpec, deploy: m.Deploy, path: str) -> None:
    """The mode as `service create --mode` sets it (a job restarts on failure only)."""
    mode = deploy.mode or "replicated"
    replicas = 1 if deploy.replicas is None else deploy.replicas
    if mode == "replicated":
        spec.replicated.replicas = replicas
    elif mode == "replicated-job":
        spec.replicated_job.total_completions = replicas
    elif mode == "global":
        getattr(spec, "global").SetInParent()
    elif mode == "global-job":
        spec.global_job.SetInParent()
    else:
        raise ComposeError(f'unknown mode "{mode}": expected replicated, global, '
                           "replicated-job or global-job", path=join_path(path, "mode"))
    if deploy.replicas is not None and mode in ("global", "global-job"):
        raise ComposeError("replicas can only be used with replicated or replicated-job mode",
                           path=join_path(path, "replicas"))
    if mode.endswith("-job"):
        spec.task.restart.condition = pb.RestartPolicy.ON_FAILURE


def _resources(res: pb.ResourceRequirements, deploy: m.Deploy) -> None:
    for given, target in ((deploy.limits, res.limits), (deploy.reservations, res.reservations)):
        if given is None:
            continue
        if given.nano_cpus is not None:
            target.nano_cpus = given.nano_cpus
        if given.memory is not None:
            target.memory_bytes = given.memory
        if given.pids is not None:
            target.pids = given.pids


def _restart(policy: pb.RestartPolicy, given: Optional[m.RestartPolicy]) -> None:
    if given is None:
        return
    if given.condition is not None:
        policy.condition = _RESTART[given.condition]
    if given.delay is not None:
        policy.delay.nanos = given.delay
        policy.has_delay = True
    if given.max_attempts is not None:
        policy.max_attempts = given.max_attempts
    if given.window is not None:
        policy.window.nanos = given.window


def _placement(spec: pb.ServiceSpec, deploy: m.Deploy, path: str) -> None:
    placement = spec.task.placement
    placement.SetInParent()   # present, as `service create` leaves it
    given = deploy.placement
    if given is None:
        return
    placement.constraints.extend(given.constraints or ())
    placement.preferences.extend(pb.PlacementPreference(spread=s)
                                 for s in given.preferences or ())
    if given.max_replicas_per_node is not None:
        if spec.WhichOneof("mode") in ("global", "global_job"):
            raise ComposeError("max_replicas_per_node can only be used with replicated mode",
                               path=join_path(path, "placement.max_replicas_per_node"))
        placement.max_replicas = given.max_replicas_per_node


def _update_config(given: Optional[m.UpdateConfig]) -> pb.UpdateConfig:
    """Docker's defaults (`service create`'s) with the keys the file gives."""
    config = default_update_config()
    if given is None:
        return config
    if given.parallelism is not None:
        config.parallelism = given.parallelism
    if given.delay is not None:
        config.delay.nanos = given.delay
    if given.failure_action is not None:
        config.failure_action = _FAILURE_ACTIONS[given.failure_action]
    if given.monitor is not None:
        config.monitor.nanos = given.monitor
    if given.max_failure_ratio is not None:
        config.max_failure_ratio = given.max_failure_ratio
    if given.order is not None:
        config.order = _ORDERS[given.order]
    return config


def _healthcheck(given: m.Healthcheck) -> pb.HealthConfig:
    if given.disable or given.test == ["NONE"]:
        return pb.HealthConfig(test=["NONE"])
    check = pb.HealthConfig(test=given.test or ())
    for key in ("interval", "timeout", "start_period", "start_interval"):
        value = getattr(given, key)
        if value is not None:
            getattr(check, key).nanos = value
    if given.retries is not None:
        check.retries = given.retries
    return check


def _ports(ports: Iterable[m.Port]) -> list[pb.PortConfig]:
    out = [pb.PortConfig(protocol=_PROTOCOLS[p.protocol], target_port=p.target,
                         published_port=p.published or 0, publish_mode=_PUBLISH_MODES[p.mode])
           for p in ports]
    return sorted(out, key=lambda p: (p.published_port, p.target_port, p.protocol,
                                      p.publish_mode))


def _owner(ref: pb.SecretReference | pb.ConfigReference, given: m.FileRef) -> None:
    ref.uid = int(given.uid or 0)
    ref.gid = int(given.gid or 0)
    ref.mode = DEFAULT_FILE_MODE if given.mode is None else given.mode
