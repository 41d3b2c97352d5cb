"""Unit tests of issue 12's CLI options: `--mount` and its update forms, capabilities,
sysctls, ulimits, extra hosts, groups, `--read-only`, and how `inspect --pretty` shows them.

Every accepted value is checked in the spec it produces; every refusal with its message.
The same bad mounts are also checked against the manager's rules, which must say the same.
"""
from __future__ import annotations

import argparse

import pytest

from cli import containeropts, mounts, pretty, specs
from cli.flags import rewrite_bool_assignments
from cli.main import build_parser
from cli.parsing import UsageError
from manager import validation
from proto import objects_pb2 as pb


def parse(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(rewrite_bool_assignments(argv))


def create(argv: list[str]) -> pb.ServiceSpec:
    return specs.create_spec(parse(["service", "create", *argv]))


def update(spec: pb.ServiceSpec, argv: list[str]) -> pb.ServiceSpec:
    return specs.update_spec(spec, parse(["service", "update", *argv, "web"]))


def container(argv: list[str]) -> pb.ContainerSpec:
    return create([*argv, "busybox"]).task.container


# ------------------------------------------------------------------ --mount ----

def test_a_volume_mount_with_every_volume_field() -> None:
    m = mounts.parse_mount("source=data,target=/data,volume-driver=local,volume-opt=type=tmpfs,"
                           "volume-opt=device=tmpfs,volume-label=team=db,volume-label=tier,"
                           "volume-nocopy")
    assert m.type == pb.Mount.VOLUME and (m.source, m.target) == ("data", "/data")
    assert not m.read_only
    v = m.volume_options
    assert v.driver == "local" and v.no_copy
    assert dict(v.driver_options) == {"type": "tmpfs", "device": "tmpfs"}
    assert dict(v.labels) == {"team": "db", "tier": ""}
    assert not m.HasField("bind_options") and not m.HasField("tmpfs_options")


@pytest.mark.parametrize("text", [
    "type=volume,src=data,dst=/data", "Type=VOLUME,source=data,destination=/data",
    "source=data,target=/data",
])
def test_docker_spellings_of_the_fields(text: str) -> None:
    m = mounts.parse_mount(text)
    assert (m.type, m.source, m.target) == (pb.Mount.VOLUME, "data", "/data")


def test_a_volume_option_with_commas_is_quoted_as_in_docker() -> None:
    m = mounts.parse_mount('type=volume,source=nfs,target=/d,volume-opt=type=nfs,'
                           '"volume-opt=o=addr=10.0.0.1,rw",volume-opt=device=:/export')
    assert dict(m.volume_options.driver_options) == {
        "type": "nfs", "o": "addr=10.0.0.1,rw", "device": ":/export"}


def test_an_anonymous_volume_has_no_source() -> None:
    m = mounts.parse_mount("target=/cache")
    assert m.type == pb.Mount.VOLUME and m.source == ""


def test_a_bind_mount() -> None:
    m = mounts.parse_mount("type=bind,source=/srv/www,target=/usr/share/nginx/html,ro,"
                           "bind-propagation=RSLAVE")
    assert m.type == pb.Mount.BIND and m.source == "/srv/www" and m.read_only
    assert m.bind_options.propagation == "rslave"
    assert not m.HasField("volume_options")


@pytest.mark.parametrize("field,value", [
    ("ro", True), ("readonly", True), ("ro=true", True), ("ro=1", True), ("readonly=false", False),
    ("ro=0", False),
])
def test_readonly_bare_or_with_a_value(field: str, value: bool) -> None:
    assert mounts.parse_mount(f"type=bind,src=/x,dst=/y,{field}").read_only is value


def test_a_tmpfs_mount_with_docker_sizes_and_an_octal_mode() -> None:
    m = mounts.parse_mount("type=tmpfs,target=/run/cache,tmpfs-size=1m,tmpfs-mode=1770")
    assert m.type == pb.Mount.TMPFS and m.source == ""
    assert (m.tmpfs_options.size_bytes, m.tmpfs_options.mode) == (1 << 20, 0o1770)
    assert mounts.parse_mount("type=tmpfs,dst=/t,tmpfs-size=64k").tmpfs_options.size_bytes == 65536
    assert mounts.parse_mount("type=tmpfs,dst=/t,tmpfs-size=2g").tmpfs_options.size_bytes == 2 << 30
    assert mounts.parse_mount("type=tmpfs,dst=/t,tmpfs-size=4096").tmpfs_options.size_bytes == 4096


def test_volume_nocopy_takes_a_value_too() -> None:
    assert not mounts.parse_mount("src=a,dst=/a,volume-nocopy=false").volume_options.no_copy
    assert mounts.parse_mount("src=a,dst=/a,volume-nocopy=1").volume_options.no_copy


@pytest.mark.parametrize("text,message", [
    ("", 'invalid --mount "": value is empty'),
    ("type=volume,source=data,target=/data,color=red",
     "unknown option 'color' in 'color=red': expected type=volume|bind|tmpfs"),
    ("source=data,target=/data,bogus", "unknown option 'bogus' in 'bogus'"),
    ("source,target=/data", "invalid field 'source' must be a key=value pair"),
    ("source=data,,target=/data", "invalid field '' must be a key=value pair"),
    ("source=,target=/data", "invalid value for 'source': value is empty"),
    ("source=data, target=/data", "invalid option 'target' in ' target=/data': option should "
                                  "not have whitespace"),
    ("source=data,target= /data", "invalid value for 'target' in 'target= /data': value should "
                                  "not have whitespace"),
    ("type=npipe,source=x,target=/x", 'invalid mount type "npipe" in --mount'),
    ("type=bind,source=/x,target=/y,ro=yes",
     "invalid value for 'ro': invalid boolean value (\"yes\"): must be one of \"true\", \"1\", "
     "\"false\", or \"0\" (default \"true\")"),
    ("type=bind,source=/x,target=/y,bind-propagation=sideways",
     "invalid value for bind-propagation: sideways (expected one of private, rprivate, shared, "
     "rshared, slave, rslave)"),
    ("type=tmpfs,target=/t,tmpfs-size=lots",
     "invalid value for tmpfs-size: lots (expected a size such as 64k, 1m or 1g)"),
    ("type=tmpfs,target=/t,tmpfs-size=-1m", "invalid value for tmpfs-size: -1m"),
    ("type=tmpfs,target=/t,tmpfs-mode=999",
     "invalid value for tmpfs-mode: 999 (expected octal permission bits such as 1777 or 0700)"),
    ("type=tmpfs,target=/t,tmpfs-mode=17777", "invalid value for tmpfs-mode: 17777"),
    ("source=data,target=/data,volume-opt==x",
     "invalid value for 'volume-opt' in --mount \"source=data,target=/data,volume-opt==x\": "
     "expected volume-opt=KEY=VALUE"),
    ("source=data,target=/data,volume-label==x", "expected volume-label=KEY=VALUE"),
    ("type=bind,source=/x,target=/y,consistency=cached",
     "unsupported option 'consistency' in 'consistency=cached': it only matters to Docker "
     "Desktop on macOS"),
    ("type=bind,source=/x,target=/y,bind-recursive=disabled",
     "unsupported option 'bind-recursive'"),
    ("source=data,target=/data,volume-subpath=sub", "unsupported option 'volume-subpath'"),
    ("type=bind,source=/x,target=/y,bind-create-src", "invalid field 'bind-create-src' must be "
                                                      "a key=value pair"),
    # options of another type (Docker's client-side words)
    ("type=bind,source=/x,target=/y,volume-opt=type=tmpfs",
     "cannot mix 'volume-*' options with mount type 'bind'"),
    ("type=bind,source=/x,target=/y,volume-nocopy",
     "cannot mix 'volume-*' options with mount type 'bind'"),
    ("type=tmpfs,target=/y,volume-driver=local",
     "cannot mix 'volume-*' options with mount type 'tmpfs'"),
    ("source=data,target=/data,bind-propagation=rshared",
     "cannot mix 'bind-*' options with mount type 'volume'"),
    ("type=tmpfs,target=/y,bind-propagation=rshared",
     "cannot mix 'bind-*' options with mount type 'tmpfs'"),
    ("source=data,target=/data,tmpfs-size=1m",
     "cannot mix 'tmpfs-*' options with mount type 'volume'"),
    ("type=bind,source=/x,target=/y,tmpfs-mode=700",
     "cannot mix 'tmpfs-*' options with mount type 'bind'"),
    # the daemon's rules, applied before any call
    ("source=data", 'invalid mount config for type "volume": field Target must not be empty'),
    ("source=data,target=data", "invalid mount target, must be an absolute path: data"),
    ("type=tmpfs,target=./tmp", "invalid mount target, must be an absolute path: ./tmp"),
    ("type=bind,source=/x,target=/",
     "invalid mount config for type \"bind\": invalid specification: destination can't be '/'"),
    ("source=data,target=/data/..",
     "invalid mount config for type \"volume\": invalid specification: destination can't be "
     "'/'"),
    ("source=/srv/data,target=/data",
     "invalid volume mount source, must not be an absolute path: /srv/data (for a path of the "
     "node use type=bind)"),
    ("source=srv/data,target=/data",
     'invalid volume name "srv/data": only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed (for a path '
     "of the node use type=bind with an absolute source)"),
    ("source=.data,target=/data", 'invalid volume name ".data"'),
    ("type=bind,target=/data",
     'invalid mount config for type "bind": field Source must not be empty'),
    ("type=bind,source=srv,target=/data",
     "invalid bind mount source, must be an absolute path: srv (the path is the node's, not "
     "this client's)"),
    ("type=tmpfs,source=x,target=/data",
     'invalid mount config for type "tmpfs": field Source must not be specified'),
])
def test_bad_mounts_are_refused(text: str, message: str) -> None:
    with pytest.raises(UsageError) as info:
        mounts.parse_mount(text)
    assert message in str(info.value)


@pytest.mark.parametrize("text", [
    "source=data,target=data", "type=bind,source=/x,target=/", "source=/srv/data,target=/data",
    "source=srv/data,target=/data", "type=bind,target=/data", "type=bind,source=srv,target=/d",
    "type=tmpfs,source=x,target=/data", "target=", "source=a b,target=/d",
])
def test_the_manager_refuses_the_same_mounts_with_the_same_words(text: str) -> None:
    fields = dict(f.split("=", 1) for f in text.split(","))
    m = pb.Mount(type=mounts.TYPES[fields.get("type", "volume")],
                 source=fields.get("source", ""), target=fields.get("target", ""))
    with pytest.raises(UsageError) as cli_error:
        mounts.check_mount(m)
    with pytest.raises(validation.InvalidSpec) as api_error:
        validation.check_mount(m)
    assert str(cli_error.value) == str(api_error.value)


def test_create_takes_several_mounts_in_order() -> None:
    c = container(["--mount", "type=bind,src=/etc/app,dst=/etc/app,ro",
                   "--mount", "src=data,dst=/data", "--mount", "type=tmpfs,dst=/tmp"])
    assert [(m.type, m.target) for m in c.mounts] == [
        (pb.Mount.BIND, "/etc/app"), (pb.Mount.VOLUME, "/data"), (pb.Mount.TMPFS, "/tmp")]


def test_create_refuses_two_mounts_at_one_target() -> None:
    with pytest.raises(UsageError, match="duplicate mount point: /data/ \\(two --mount options "
                                         "have this target\\)"):
        container(["--mount", "src=a,dst=/data", "--mount", "type=tmpfs,dst=/data/"])


def mounted() -> pb.ServiceSpec:
    return create(["--name", "web", "--mount", "src=data,dst=/data",
                   "--mount", "type=bind,src=/etc/app,dst=/etc/app,ro",
                   "--mount", "type=tmpfs,dst=/tmp", "busybox"])


def targets(spec: pb.ServiceSpec) -> list[str]:
    return [m.target for m in spec.task.container.mounts]


def test_mount_rm_removes_by_target() -> None:
    spec = mounted()
    new = update(spec, ["--mount-rm", "/etc/app", "--mount-rm", "/tmp/"])
    assert targets(new) == ["/data"]
    assert targets(spec) == ["/data", "/etc/app", "/tmp"]      # the current spec is untouched
    assert update(spec, ["--mount-rm", "/nowhere"]) == spec


def test_mount_add_appends_or_replaces_the_mount_at_its_target() -> None:
    spec = mounted()
    new = update(spec, ["--mount-add", "type=bind,src=/srv/data,dst=/data/,ro",
                        "--mount-add", "type=tmpfs,dst=/cache,tmpfs-size=1m"])
    assert targets(new) == ["/data/", "/etc/app", "/tmp", "/cache"]
    replaced = new.task.container.mounts[0]
    assert (replaced.type, replaced.source, replaced.read_only) == (pb.Mount.BIND, "/srv/data",
                                                                    True)


def test_mount_rm_then_mount_add_of_one_target_replaces_it() -> None:
    new = update(mounted(), ["--mount-rm", "/data", "--mount-add", "src=other,dst=/data"])
    assert targets(new) == ["/etc/app", "/tmp", "/data"]
    assert new.task.container.mounts[2].source == "other"


def test_mount_add_refuses_two_mounts_at_one_target_and_bad_mounts() -> None:
    with pytest.raises(UsageError, match="duplicate mount target: /x is given twice in "
                                         "--mount-add"):
        update(mounted(), ["--mount-add", "src=a,dst=/x", "--mount-add", "src=b,dst=/x"])
    with pytest.raises(UsageError, match="cannot mix 'volume-\\*' options with mount type "
                                         "'bind'"):
        update(mounted(), ["--mount-add", "type=bind,src=/x,dst=/x,volume-opt=a=b"])


def test_create_takes_no_mount_add_and_update_no_mount() -> None:
    with pytest.raises(SystemExit):
        parse(["service", "create", "--mount-add", "src=a,dst=/a", "busybox"])
    with pytest.raises(SystemExit):
        parse(["service", "update", "--mount", "src=a,dst=/a", "web"])


# ------------------------------------------------------------ read-only, caps ----

def test_read_only_reaches_the_spec_on_create_and_update() -> None:
    assert container(["--read-only"]).read_only
    assert not container(["--read-only=false"]).read_only
    spec = create(["--name", "web", "busybox"])
    assert update(spec, ["--read-only"]).task.container.read_only
    assert not update(update(spec, ["--read-only"]), ["--read-only=false"]).task.container.read_only


def test_capabilities_are_normalised_on_create() -> None:
    c = container(["--cap-add", "net_admin", "--cap-add", "CAP_SYS_PTRACE",
                   "--cap-add", " Net_Admin ", "--cap-drop", "mknod", "--cap-drop", "NET_RAW"])
    assert list(c.cap_add) == ["CAP_NET_ADMIN", "CAP_SYS_PTRACE"]
    assert list(c.cap_drop) == ["CAP_MKNOD", "CAP_NET_RAW"]


def test_adding_wins_over_dropping_on_create_and_all_stands_alone() -> None:
    c = container(["--cap-add", "NET_ADMIN", "--cap-drop", "net_admin", "--cap-drop", "chown"])
    assert (list(c.cap_add), list(c.cap_drop)) == (["CAP_NET_ADMIN"], ["CAP_CHOWN"])
    c = container(["--cap-drop", "all", "--cap-drop", "chown", "--cap-add", "NET_BIND_SERVICE"])
    assert (list(c.cap_add), list(c.cap_drop)) == (["CAP_NET_BIND_SERVICE"], ["ALL"])
    c = container(["--cap-add", "ALL", "--cap-add", "sys_admin"])
    assert list(c.cap_add) == ["ALL"]


def test_reset_is_for_update_only() -> None:
    with pytest.raises(UsageError, match="RESET can only be given to service update"):
        container(["--cap-add", "RESET"])
    with pytest.raises(UsageError, match="invalid capability"):
        container(["--cap-add", " "])


def caps(spec: pb.ServiceSpec) -> tuple[list[str], list[str]]:
    c = spec.task.container
    return list(c.cap_add), list(c.cap_drop)


def test_update_capabilities_three_states() -> None:
    spec = create(["--name", "web", "--cap-drop", "NET_RAW", "--cap-add", "SYS_ADMIN",
                   "busybox"])
    # adding one the service drops takes it off the drop list only (back to the default)
    step = update(spec, ["--cap-add", "net_raw"])
    assert caps(step) == (["CAP_SYS_ADMIN"], [])
    # adding it again now adds it
    assert caps(update(step, ["--cap-add", "CAP_NET_RAW"])) == (
        ["CAP_NET_RAW", "CAP_SYS_ADMIN"], [])
    # dropping one the service adds takes it off the add list only
    step = update(spec, ["--cap-drop", "sys_admin"])
    assert caps(step) == ([], ["CAP_NET_RAW"])
    assert caps(update(step, ["--cap-drop", "SYS_ADMIN"])) == (
        [], ["CAP_NET_RAW", "CAP_SYS_ADMIN"])
    # given in both, adding wins; the others are untouched
    assert caps(update(spec, ["--cap-add", "CHOWN", "--cap-drop", "chown"])) == (
        ["CAP_CHOWN", "CAP_SYS_ADMIN"], ["CAP_NET_RAW"])
    # no capability flag: the lists stay as they are
    assert caps(update(spec, ["--image", "busybox:2"])) == (["CAP_SYS_ADMIN"], ["CAP_NET_RAW"])


def test_update_capabilities_reset_and_all() -> None:
    spec = create(["--name", "web", "--cap-drop", "NET_RAW", "--cap-add", "SYS_ADMIN",
                   "busybox"])
    assert caps(update(spec, ["--cap-add", "RESET"])) == ([], ["CAP_NET_RAW"])
    assert caps(update(spec, ["--cap-drop", "reset"])) == (["CAP_SYS_ADMIN"], [])
    assert caps(update(spec, ["--cap-add", "RESET", "--cap-add", "chown"])) == (
        ["CAP_CHOWN"], ["CAP_NET_RAW"])
    assert caps(update(spec, ["--cap-add", "all"])) == (["ALL"], ["CAP_NET_RAW"])


# ----------------------------------------------- sysctls, ulimits, hosts, groups ----

def test_sysctls_on_create_and_update() -> None:
    c = container(["--sysctl", "net.core.somaxconn=1024", "--sysctl", "net.ipv4.ip_forward=1"])
    assert dict(c.sysctls) == {"net.core.somaxconn": "1024", "net.ipv4.ip_forward": "1"}
    spec = create(["--name", "web", "--sysctl", "net.core.somaxconn=1024",
                   "--sysctl", "kernel.shmmax=1", "busybox"])
    new = update(spec, ["--sysctl-rm", "kernel.shmmax", "--sysctl-add", "net.core.somaxconn=4096",
                        "--sysctl-add", "fs.mqueue.msg_max=20"])
    assert dict(new.task.container.sysctls) == {"net.core.somaxconn": "4096",
                                               "fs.mqueue.msg_max": "20"}


@pytest.mark.parametrize("value", ["net.core.somaxconn", "=1", "a b=1"])
def test_a_malformed_sysctl_is_refused(value: str) -> None:
    with pytest.raises(UsageError, match=f'invalid value "{value}" for --sysctl: expected '
                                         "KEY=VALUE"):
        container(["--sysctl", value])


def test_ulimits_on_create_and_update() -> None:
    c = container(["--ulimit", "nproc=64", "--ulimit", "nofile=1024:2048",
                   "--ulimit", "core=-1"])
    assert [(u.name, u.soft, u.hard) for u in c.ulimits] == [
        ("core", -1, -1), ("nofile", 1024, 2048), ("nproc", 64, 64)]
    spec = create(["--name", "web", "--ulimit", "nofile=1024:2048", "--ulimit", "nproc=64",
                   "busybox"])
    new = update(spec, ["--ulimit-rm", "nproc", "--ulimit-add", "nofile=4096",
                        "--ulimit-add", "memlock=-1:-1"])
    assert [(u.name, u.soft, u.hard) for u in new.task.container.ulimits] == [
        ("memlock", -1, -1), ("nofile", 4096, 4096)]


@pytest.mark.parametrize("value,message", [
    ("nofile", 'invalid value "nofile" for --ulimit: expected NAME=SOFT\\[:HARD\\]'),
    ("files=10", 'invalid ulimit type "files" in --ulimit "files=10": expected one of core,'),
    ("nofile=ten", '"ten" is not a number'),
    ("nofile=10:x", '"x" is not a number'),
    ("nofile=2048:1024", "the soft limit must be less than or equal to the hard limit"),
    ("nofile=-1:1024", "the soft limit must be less than or equal to the hard limit"),
    ("nofile=-5", "limits are numbers >= 0, or -1 for unlimited"),
])
def test_a_bad_ulimit_is_refused(value: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        container(["--ulimit", value])


def test_hosts_are_stored_as_swarmkit_lines() -> None:
    c = container(["--host", "db:10.0.0.5", "--host", "v6=::1", "--host", "web:[fe80::1]",
                   "--host", "db:10.0.0.5"])
    assert list(c.hosts) == ["10.0.0.5 db", "::1 v6", "fe80::1 web"]


@pytest.mark.parametrize("value,message", [
    ("db", 'bad format for --host: "db": expected HOST:IP'),
    (":10.0.0.5", "bad format for --host"),
    ("db:ten", 'invalid IP address in --host: "ten"'),
    ("db:host-gateway", "host-gateway is not supported here"),
])
def test_a_bad_host_is_refused(value: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        container(["--host", value])


def test_host_add_and_rm() -> None:
    spec = pb.ServiceSpec()
    spec.task.container.image = "busybox"
    spec.task.container.hosts.extend(["10.0.0.5 db dbalias", "10.0.0.6 cache", "10.0.0.7 db"])
    new = update(spec, ["--host-rm", "db:10.0.0.5", "--host-rm", "cache",
                        "--host-add", "mq:10.0.0.8", "--host-add", "mq:10.0.0.8"])
    assert list(new.task.container.hosts) == ["10.0.0.5 dbalias", "10.0.0.7 db", "10.0.0.8 mq"]
    assert list(update(spec, ["--host-rm", "db"]).task.container.hosts) == [
        "10.0.0.5 dbalias", "10.0.0.6 cache"]


def test_groups_on_create_and_update() -> None:
    spec = create(["--name", "web", "--group", "video", "--group", "1001", "busybox"])
    assert list(spec.task.container.groups) == ["video", "1001"]
    new = update(spec, ["--group-rm", "video", "--group-add", "audio", "--group-add", "1001"])
    assert list(new.task.container.groups) == ["1001", "audio"]
    with pytest.raises(UsageError, match='invalid value "a b" for --group'):
        container(["--group", "a b"])


def test_dns_options_on_create_and_update() -> None:
    spec = create(["--name", "web", "--dns-option", "ndots:2", "--dns-option", "debug",
                   "busybox"])
    assert list(spec.task.container.dns_options) == ["ndots:2", "debug"]
    new = update(spec, ["--dns-option-rm", "debug", "--dns-option-add", "timeout:3"])
    assert list(new.task.container.dns_options) == ["ndots:2", "timeout:3"]


def test_the_global_host_option_keeps_its_meaning_next_to_service_host() -> None:
    ns = parse(["-H", "unix:///tmp/x.sock", "service", "create", "--host", "db:10.0.0.5",
                "busybox"])
    assert ns.host == "unix:///tmp/x.sock" and ns.hosts == ["db:10.0.0.5"]
    ns = parse(["-H", "unix:///tmp/x.sock", "service", "update", "--host-add", "db:10.0.0.5",
                "web"])
    assert ns.host == "unix:///tmp/x.sock" and ns.host_add == ["db:10.0.0.5"]


def test_every_new_create_flag_lands_in_the_spec() -> None:
    c = container(["--mount", "src=d,dst=/d", "--cap-add", "NET_ADMIN", "--cap-drop", "MKNOD",
                   "--sysctl", "net.core.somaxconn=1", "--ulimit", "nofile=10",
                   "--host", "a:10.0.0.1", "--group", "video", "--dns-option", "ndots:1",
                   "--read-only", "--init", "--tty"])
    assert len(c.mounts) == 1 and list(c.cap_add) == ["CAP_NET_ADMIN"]
    assert list(c.cap_drop) == ["CAP_MKNOD"] and dict(c.sysctls) == {"net.core.somaxconn": "1"}
    assert c.ulimits[0].name == "nofile" and list(c.hosts) == ["10.0.0.1 a"]
    assert list(c.groups) == ["video"] and list(c.dns_options) == ["ndots:1"]
    assert c.read_only and c.init and c.tty
    validation.check_container(c)      # and the manager accepts what the CLI built


def test_normalize_capability() -> None:
    assert containeropts.normalize_capability("sys_admin") == "CAP_SYS_ADMIN"
    assert containeropts.normalize_capability("all") == "ALL"
    assert validation.normalize_capability("sys_admin") == "CAP_SYS_ADMIN"


# ----------------------------------------------------------------- --pretty ----

def test_pretty_shows_capabilities_sysctls_ulimits_and_mounts() -> None:
    spec = create(["--name", "db", "--cap-add", "NET_ADMIN", "--cap-drop", "MKNOD",
                   "--cap-drop", "NET_RAW", "--sysctl", "net.core.somaxconn=1024",
                   "--ulimit", "nofile=1024:2048",
                   "--mount", "type=bind,src=/srv,dst=/data,ro,bind-propagation=rslave",
                   "--mount", "src=db,dst=/var/lib/db,volume-driver=local,volume-opt=type=tmpfs,"
                              "volume-opt=device=tmpfs,volume-label=team=x,volume-nocopy",
                   "--mount", "type=tmpfs,dst=/tmp,tmpfs-size=1m,tmpfs-mode=1770", "busybox"])
    text = pretty.service_text(pb.Service(id="x", spec=spec))
    lines = [" ".join(line.split()) for line in text.splitlines()]
    start = lines.index("Capabilities:")
    assert lines[start:start + 26] == [
        "Capabilities:", "Add: CAP_NET_ADMIN", "Drop: CAP_MKNOD, CAP_NET_RAW",
        "SysCtls:", "net.core.somaxconn: 1024",
        "Ulimits:", "nofile: 1024:2048",
        "Mounts:",
        "Target: /data", "Source: /srv", "ReadOnly: true", "Type: bind", "Propagation: rslave",
        "Target: /var/lib/db", "Source: db", "ReadOnly: false", "Type: volume",
        "Volume driver: local", "Volume options: device=tmpfs, type=tmpfs",
        "Volume labels: team=x", "Volume nocopy: true",
        "Target: /tmp", "Source:", "ReadOnly: false", "Type: tmpfs", "Size: 1MiB"]
    assert lines[start + 26] == "Mode: 1770"
    # a nested line keeps Docker's indentation
    assert "  Source:" in text and " Target:" in text


def test_pretty_without_the_new_fields_has_no_such_sections() -> None:
    text = pretty.service_text(pb.Service(id="x", spec=create(["--name", "a", "busybox"])))
    for title in ("Capabilities:", "SysCtls:", "Ulimits:", "Mounts:"):
        assert title not in text
