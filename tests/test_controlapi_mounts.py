"""The Control API's rules for issue 12's container fields, without gRPC, message included.

Mounts, capabilities, sysctls, ulimits, extra hosts and groups of a service spec are
checked by the manager for every caller (tooling sends specs over gRPC directly, not
through the CLI): a refused create or update is a `Refusal` raised before anything is
written, so nothing changes.
"""
from __future__ import annotations

from typing import Callable

import pytest

from cli import specs
from cli.flags import rewrite_bool_assignments
from cli.main import build_parser
from manager.controlapi import services
from manager.controlapi.common import Code, Refusal
from proto import control_pb2 as cpb
from proto import objects_pb2 as pb


def refused(message: str, rule: Callable[[], object]) -> None:
    with pytest.raises(Refusal) as info:
        rule()
    assert (info.value.code, info.value.message) == (Code.INVALID_ARGUMENT, message)


def spec(*mounts: pb.Mount) -> pb.ServiceSpec:
    s = pb.ServiceSpec()
    s.annotations.name = "web"
    s.task.container.image = "busybox:latest"
    s.replicated.replicas = 1
    s.task.container.mounts.extend(mounts)
    return s


def secret(name: str) -> pb.Secret:
    sec = pb.Secret(id=f"id-{name}")
    sec.spec.annotations.name = name
    sec.spec.data = b"x"
    return sec


def config(name: str) -> pb.Config:
    cfg = pb.Config(id=f"id-{name}")
    cfg.spec.annotations.name = name
    cfg.spec.data = b"x"
    return cfg


REFS = services.Refs(secrets=[secret("db_pass")], configs=[config("app.conf")])


def create(s: pb.ServiceSpec) -> pb.Service:
    return services.new_service(cpb.CreateServiceRequest(spec=s), REFS)


def volume(source: str = "data", target: str = "/data", **kw: object) -> pb.Mount:
    return pb.Mount(type=pb.Mount.VOLUME, source=source, target=target, **kw)  # type: ignore


def bind(source: str = "/srv", target: str = "/data", **kw: object) -> pb.Mount:
    return pb.Mount(type=pb.Mount.BIND, source=source, target=target, **kw)  # type: ignore


def tmpfs(target: str = "/tmp", **kw: object) -> pb.Mount:
    return pb.Mount(type=pb.Mount.TMPFS, target=target, **kw)  # type: ignore


# ------------------------------------------------------------------- mounts --

def test_good_mounts_are_stored_as_sent() -> None:
    s = spec(volume(volume_options=pb.Mount.VolumeOptions(
                 no_copy=True, labels={"a": "b"}, driver="local",
                 driver_options={"type": "tmpfs", "device": "tmpfs"})),
             bind("/etc/app", "/etc/app", read_only=True,
                  bind_options=pb.Mount.BindOptions(propagation="rslave")),
             tmpfs(tmpfs_options=pb.Mount.TmpfsOptions(size_bytes=1 << 20, mode=0o1777)),
             volume("", "/cache"))
    svc = create(s)
    assert list(svc.spec.task.container.mounts) == list(s.task.container.mounts)


@pytest.mark.parametrize("mount,message", [
    (volume(target="data"), "invalid mount target, must be an absolute path: data"),
    (tmpfs(target=""), 'invalid mount config for type "tmpfs": field Target must not be empty'),
    (bind(target="/"),
     "invalid mount config for type \"bind\": invalid specification: destination can't be '/'"),
    (volume(source="/srv/data"),
     "invalid volume mount source, must not be an absolute path: /srv/data (for a path of the "
     "node use type=bind)"),
    (volume(source="srv/data"),
     'invalid volume name "srv/data": only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed (for a path '
     "of the node use type=bind with an absolute source)"),
    (bind(source=""), 'invalid mount config for type "bind": field Source must not be empty'),
    (bind(source="srv"),
     "invalid bind mount source, must be an absolute path: srv (the path is the node's, not "
     "this client's)"),
    (pb.Mount(type=pb.Mount.TMPFS, source="x", target="/t"),
     'invalid mount config for type "tmpfs": field Source must not be specified'),
    (bind(volume_options=pb.Mount.VolumeOptions(driver_options={"type": "tmpfs"})),
     "cannot mix 'volume-*' options with mount type 'bind' (mount at /data)"),
    (tmpfs(volume_options=pb.Mount.VolumeOptions(no_copy=True)),
     "cannot mix 'volume-*' options with mount type 'tmpfs' (mount at /tmp)"),
    (volume(bind_options=pb.Mount.BindOptions(propagation="shared")),
     "cannot mix 'bind-*' options with mount type 'volume' (mount at /data)"),
    (bind(tmpfs_options=pb.Mount.TmpfsOptions(size_bytes=1)),
     "cannot mix 'tmpfs-*' options with mount type 'bind' (mount at /data)"),
    (bind(bind_options=pb.Mount.BindOptions(propagation="sideways")),
     'invalid mount config for type "bind": invalid propagation mode: sideways (expected one '
     "of private, rprivate, shared, rshared, slave, rslave)"),
    (tmpfs(tmpfs_options=pb.Mount.TmpfsOptions(size_bytes=-1)),
     'invalid mount config for type "tmpfs": tmpfs size must not be negative: -1'),
    (tmpfs(tmpfs_options=pb.Mount.TmpfsOptions(mode=0o17777)),
     'invalid mount config for type "tmpfs": invalid tmpfs mode 0o17777: expected permission '
     "bits up to 0o7777"),
    (pb.Mount(type=7, target="/x"),  # type: ignore[arg-type]
     "invalid mount type: 7: expected volume, bind or tmpfs"),
    (volume(volume_options=pb.Mount.VolumeOptions(driver_options={"": "x"})),
     "invalid volume-opt of the volume mount at /data: keys must not be empty nor contain "
     "white space"),
    (volume(volume_options=pb.Mount.VolumeOptions(labels={"a b": "x"})),
     "invalid volume-label of the volume mount at /data: keys must not be empty nor contain "
     "white space"),
    (volume(source="", volume_options=pb.Mount.VolumeOptions(labels={"a": "b"})),
     'invalid mount config for type "volume": an anonymous volume (no source) cannot take '
     "volume-opt, volume-label or volume-driver (mount at /data): name it with source=NAME"),
])
def test_a_bad_mount_is_refused(mount: pb.Mount, message: str) -> None:
    refused(message, lambda: create(spec(mount)))


def test_the_cli_refuses_an_anonymous_volume_with_options_as_the_manager_does() -> None:
    with pytest.raises(specs.UsageError) as caught:
        specs.create_spec(build_parser().parse_args(
            ["service", "create", "--mount", "type=volume,target=/d,volume-opt=type=tmpfs",
             "busybox"]))
    assert str(caught.value) == (
        'invalid mount config for type "volume": an anonymous volume (no source) cannot take '
        "volume-opt, volume-label or volume-driver (mount at /d): name it with source=NAME")


def test_a_duplicate_mount_target_is_refused() -> None:
    refused("duplicate mount point: /data/ (two mounts have this target)",
            lambda: create(spec(volume(), tmpfs("/data/"))))


@pytest.mark.parametrize("mount,what", [
    (tmpfs("/run/secrets/db_pass"), "secret db_pass at /run/secrets/db_pass"),
    (tmpfs("/run/secrets/db_pass/x"), "secret db_pass at /run/secrets/db_pass"),
    (volume(target="/app.conf"), "config app.conf at /app.conf"),
])
def test_a_mount_on_a_secret_or_config_file_is_refused(mount: pb.Mount, what: str) -> None:
    s = spec(mount)
    s.task.container.secrets.add(secret_name="db_pass")
    s.task.container.configs.add(config_name="app.conf")
    refused(f"mount target {mount.target} collides with {what}: give the mount or the file "
            "another target", lambda: create(s))


def test_a_mount_on_an_absolute_secret_target_is_refused() -> None:
    s = spec(bind("/srv/tls", "/etc/tls/key.pem"))
    s.task.container.secrets.add(secret_name="db_pass", target="/etc/tls/key.pem")
    refused("mount target /etc/tls/key.pem collides with secret db_pass at /etc/tls/key.pem: "
            "give the mount or the file another target", lambda: create(s))


def test_a_mount_above_the_secret_files_is_fine() -> None:
    s = spec(tmpfs("/run/secrets"), tmpfs("/etc"))
    s.task.container.secrets.add(secret_name="db_pass")
    s.task.container.configs.add(config_name="app.conf", target="/etc/app.conf")
    assert len(create(s).spec.task.container.mounts) == 2


def service(s: pb.ServiceSpec) -> pb.Service:
    svc = pb.Service(id="id-web", spec=s, spec_version=1)
    svc.meta.version = 3
    return svc


def test_a_refused_update_changes_nothing() -> None:
    svc = service(create(spec(volume())).spec)
    before = pb.Service()
    before.CopyFrom(svc)
    bad = pb.ServiceSpec()
    bad.CopyFrom(svc.spec)
    bad.task.container.mounts.append(volume(source="/abs", target="/other"))
    refused("invalid volume mount source, must not be an absolute path: /abs (for a path of "
            "the node use type=bind)",
            lambda: services.updated_service(svc, cpb.UpdateServiceRequest(
                service_version=3, spec=bad), REFS))
    assert svc == before


def test_a_change_of_mounts_is_a_rolling_update() -> None:
    svc = service(create(spec(volume())).spec)
    new_spec = pb.ServiceSpec()
    new_spec.CopyFrom(svc.spec)
    new_spec.task.container.mounts.append(tmpfs())
    new = services.updated_service(svc, cpb.UpdateServiceRequest(service_version=3,
                                                                   spec=new_spec), REFS)
    assert new is not None and new.spec_version == 2
    assert new.update_status.state == pb.UpdateStatus.UPDATING


# -------------------------------------------- capabilities and other fields --

def container_spec(**fields: object) -> pb.ServiceSpec:
    s = spec()
    for name, value in fields.items():
        target = getattr(s.task.container, name)
        if isinstance(value, dict):
            target.update(value)
        else:
            target.extend(value)
    return s


def test_capabilities_are_normalised_and_all_is_accepted() -> None:
    svc = create(container_spec(cap_add=["net_admin", "CAP_SYS_PTRACE", "NET_ADMIN"],
                                cap_drop=["all"]))
    c = svc.spec.task.container
    assert list(c.cap_add) == ["CAP_NET_ADMIN", "CAP_SYS_PTRACE"] and list(c.cap_drop) == ["ALL"]


@pytest.mark.parametrize("field", ["cap_add", "cap_drop"])
def test_an_unknown_capability_is_refused(field: str) -> None:
    refused(f'unknown capability: "CAP_FLY" in {field}: expected a Linux capability such as '
            "NET_ADMIN or SYS_PTRACE (the CAP_ prefix is optional), or ALL",
            lambda: create(container_spec(**{field: ["fly"]})))


def test_the_cli_leaves_capability_names_to_the_manager() -> None:
    ns = build_parser().parse_args(rewrite_bool_assignments(
        ["service", "create", "--name", "web", "--cap-add", "net_fly", "busybox"]))
    refused('unknown capability: "CAP_NET_FLY" in cap_add: expected a Linux capability such '
            "as NET_ADMIN or SYS_PTRACE (the CAP_ prefix is optional), or ALL",
            lambda: create(specs.create_spec(ns)))


def test_namespaced_sysctls_are_accepted() -> None:
    sysctls = {"net.core.somaxconn": "1024", "fs.mqueue.msg_max": "20", "kernel.shmmax": "1"}
    assert dict(create(container_spec(sysctls=sysctls)).spec.task.container.sysctls) == sysctls


@pytest.mark.parametrize("sysctls,message", [
    ({"vm.swappiness": "1"},
     'sysctl "vm.swappiness" is not allowed in a container: only namespaced sysctls can be set '
     "(net.*, fs.mqueue.*, kernel.msgmax, kernel.msgmnb, kernel.msgmni, kernel.sem, "
     "kernel.shmall, kernel.shmmax, kernel.shmmni, kernel.shm_rmid_forced)"),
    ({"net.core.somaxconn": ""},
     'invalid sysctl "net.core.somaxconn=": expected KEY=VALUE such as net.core.somaxconn=1024'),
    ({"net.a b": "1"}, 'invalid sysctl "net.a b=1": expected KEY=VALUE such as '
                       "net.core.somaxconn=1024"),
])
def test_a_bad_sysctl_is_refused(sysctls: dict[str, str], message: str) -> None:
    refused(message, lambda: create(container_spec(sysctls=sysctls)))


@pytest.mark.parametrize("ulimits,message", [
    ([pb.Ulimit(name="files", soft=1, hard=1)],
     'invalid ulimit type "files": expected one of core, cpu, data, fsize, locks, memlock, '
     "msgqueue, nice, nofile, nproc, rss, rtprio, rttime, sigpending, stack"),
    ([pb.Ulimit(name="nofile", soft=1, hard=1), pb.Ulimit(name="nofile", soft=2, hard=2)],
     "ulimit nofile is given twice"),
    ([pb.Ulimit(name="nofile", soft=20, hard=10)],
     "invalid ulimit nofile=20:10: the soft limit must be less than or equal to the hard limit"),
    ([pb.Ulimit(name="nofile", soft=-1, hard=10)],
     "invalid ulimit nofile=-1:10: the soft limit must be less than or equal to the hard limit"),
    ([pb.Ulimit(name="nofile", soft=-2, hard=-1)],
     "invalid ulimit nofile=-2:-1: limits are numbers >= 0, or -1 for unlimited"),
])
def test_a_bad_ulimit_is_refused(ulimits: list[pb.Ulimit], message: str) -> None:
    refused(message, lambda: create(container_spec(ulimits=ulimits)))


def test_good_ulimits_hosts_and_groups_are_accepted() -> None:
    svc = create(container_spec(ulimits=[pb.Ulimit(name="nofile", soft=1024, hard=2048),
                                         pb.Ulimit(name="core", soft=-1, hard=-1),
                                         pb.Ulimit(name="nproc", soft=5, hard=-1)],
                                hosts=["10.0.0.5 db db.local", "::1 v6"],
                                groups=["video", "1001"]))
    c = svc.spec.task.container
    assert len(c.ulimits) == 3 and len(c.hosts) == 2 and list(c.groups) == ["video", "1001"]


@pytest.mark.parametrize("line", ["10.0.0.5", "db 10.0.0.5", "10.0.0.5 db:1", "", "ten db"])
def test_a_malformed_extra_host_is_refused(line: str) -> None:
    refused(f'invalid extra host entry "{line}": expected "IP_ADDRESS HOSTNAME [ALIAS...]" such '
            'as "10.0.0.5 db"', lambda: create(container_spec(hosts=[line])))


@pytest.mark.parametrize("group", ["", "a b"])
def test_a_malformed_group_is_refused(group: str) -> None:
    refused(f'invalid supplementary group "{group}": expected a group name or GID',
            lambda: create(container_spec(groups=[group])))
