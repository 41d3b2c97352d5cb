"""Issue 12, worker side, pure parts: Docker's capability arithmetic, the task's
mounts and named volumes, the libpod SpecGenerator and volume-create JSON of every
new ContainerSpec field, Docker's labels on task containers, and the controller's
REJECTED paths (missing bind source, volume errors, unknown capability) on the
in-memory runtime."""
from __future__ import annotations

import pytest

from manager.orchestrator.slots import STACK_NAMESPACE_LABEL
from proto import objects_pb2 as pb
from tests.test_worker_controller import Harness
from tests.test_worker_fakes import FakeRuntime, make_task
from worker import caps, mounts, taskspec
from worker.podman_wire import (RLIM_INFINITY, capability_options, check_volume_driver,
                                container_spec, image_user,
                                host_entries, proc_rlimits, volume_create_body,
                                volume_create_error)
from worker.runtime import (BIND, TMPFS, VOLUME, ContainerConfig, Mount, RuntimeError_, Ulimit,
                            VolumeConfig)

DOCKER_CAPEFF = 0x00000000A80425FB   # CapEff of a Docker container (docker run busybox)

# ------------------------------------------------------------ capabilities --


def test_default_set_is_dockers() -> None:
    assert caps.effective([], []) == list(caps.DOCKER_DEFAULT)
    assert caps.bitmask(caps.DOCKER_DEFAULT) == DOCKER_CAPEFF
    assert "CAP_NET_RAW" in caps.DOCKER_DEFAULT      # podman's default lacks it
    assert len(caps.DOCKER_DEFAULT) == 14


def test_add_and_drop_any_spelling() -> None:
    got = caps.effective(["net_admin", "CAP_SYS_PTRACE"], ["NET_RAW", "cap_mknod"])
    assert "CAP_NET_ADMIN" in got and "CAP_SYS_PTRACE" in got
    assert "CAP_NET_RAW" not in got and "CAP_MKNOD" not in got
    assert caps.bitmask(got) == (DOCKER_CAPEFF | 1 << 12 | 1 << 19) & ~(1 << 13) & ~(1 << 27)
    # kernel order, each once (an added default is not doubled)
    again = caps.effective(["CHOWN", "CAP_CHOWN"], [])
    assert again == list(caps.DOCKER_DEFAULT)


def test_all_in_additions_gives_everything_grantable_but_the_drops() -> None:
    grantable = [c for c in caps.CAPABILITIES if c != "CAP_SYS_RESOURCE"]
    got = caps.effective(["ALL"], ["NET_ADMIN"], grantable)
    assert got == [c for c in grantable if c != "CAP_NET_ADMIN"]
    # ALL added wins over ALL dropped (Docker: the drops are removed from ALL one by one)
    assert caps.effective(["all"], ["ALL"], grantable) == grantable


def test_all_in_drops_keeps_only_the_additions() -> None:
    assert caps.effective(["NET_BIND_SERVICE", "kill"], ["ALL"]) == [
        "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    assert caps.effective([], ["ALL"]) == []


def test_unknown_capability_is_refused_with_its_name() -> None:
    with pytest.raises(caps.CapabilityError) as caught:
        caps.effective(["NET_FOO"], [])
    assert str(caught.value) == 'unknown capability: "CAP_NET_FOO"'
    with pytest.raises(caps.CapabilityError):
        caps.effective([], ["bogus"])


def test_bounding_set_parsing() -> None:
    status = "Name:\tsh\nCapInh:\t0000000000000000\nCapBnd:\t000001fffeffffff\n"
    found = caps.parse_bounding(status)
    assert "CAP_SYS_RESOURCE" not in found and len(found) == 40
    assert caps.names_of(DOCKER_CAPEFF) == list(caps.DOCKER_DEFAULT)
    assert set(caps.grantable()) <= set(caps.CAPABILITIES)


# ------------------------------------------------------------------ mounts --

def spec_with_mounts() -> pb.ContainerSpec:
    spec = pb.ContainerSpec(image="busybox")
    bind = spec.mounts.add(type=pb.Mount.BIND, source="/srv/data", target="/data",
                           read_only=True)
    bind.bind_options.propagation = "rslave"
    vol = spec.mounts.add(type=pb.Mount.VOLUME, source="db", target="/var/lib/db")
    vol.volume_options.no_copy = True
    vol.volume_options.labels["tier"] = "db"
    vol.volume_options.driver_options.update({"type": "tmpfs", "device": "tmpfs"})
    spec.mounts.add(type=pb.Mount.VOLUME, source="db", target="/again")   # same volume twice
    spec.mounts.add(type=pb.Mount.VOLUME, target="/scratch")              # anonymous
    tmp = spec.mounts.add(type=pb.Mount.TMPFS, target="/run/tmp")
    tmp.tmpfs_options.size_bytes = 1 << 20
    tmp.tmpfs_options.mode = 0o700
    return spec


def test_container_mounts_keep_every_field() -> None:
    got = mounts.container_mounts(spec_with_mounts())
    assert got == [
        Mount("/srv/data", "/data", True, type=BIND, propagation="rslave"),
        Mount("db", "/var/lib/db", False, type=VOLUME, no_copy=True),
        Mount("db", "/again", False, type=VOLUME),
        Mount("", "/scratch", False, type=VOLUME),
        Mount("", "/run/tmp", False, type=TMPFS, tmpfs_size=1 << 20, tmpfs_mode=0o700),
    ]


def test_named_volumes_needed_once_each_anonymous_ones_are_podmans() -> None:
    assert mounts.volumes_needed(spec_with_mounts()) == [
        VolumeConfig(name="db", driver="", labels={"tier": "db"},
                     options={"type": "tmpfs", "device": "tmpfs"})]


def test_missing_bind_source_gives_dockers_error() -> None:
    spec = spec_with_mounts()
    mounts.check_node(spec, exists=lambda path: True)
    with pytest.raises(mounts.MountError) as caught:
        mounts.check_node(spec, exists=lambda path: path != "/srv/data")
    assert str(caught.value) == ('invalid mount config for type "bind": bind source path '
                                 'does not exist: /srv/data')


def test_anonymous_volume_with_volume_options_is_refused() -> None:
    spec = pb.ContainerSpec(image="busybox")
    anon = spec.mounts.add(type=pb.Mount.VOLUME, target="/x")
    anon.volume_options.no_copy = True
    mounts.check_node(spec)                      # nocopy is fine on an anonymous volume
    anon.volume_options.driver_options["type"] = "tmpfs"
    with pytest.raises(mounts.MountError) as caught:
        mounts.check_node(spec)
    assert "anonymous volume at /x" in str(caught.value) and "source" in str(caught.value)


# ----------------------------------------------------- libpod SpecGenerator --

def full_config() -> ContainerConfig:
    return ContainerConfig(
        name="web.1.t1", image="busybox", network_ns="/run/netns/x",
        mounts=mounts.container_mounts(spec_with_mounts()),
        capabilities=["CAP_CHOWN", "CAP_NET_RAW"],
        sysctls={"net.ipv4.ip_forward": "1"},
        ulimits=[Ulimit("nofile", 1024, 2048), Ulimit("core", -1, -1)],
        hosts=["10.0.0.7 db db.local", "fd00::1 six"],
        groups=["1234", "nogroup"], dns_options=["ndots:2"],
        init=True, tty=True, read_only=True)


def test_spec_generator_carries_every_field() -> None:
    spec = container_spec(full_config())
    assert spec["mounts"] == [
        {"destination": "/data", "type": "bind", "source": "/srv/data",
         "options": ["rbind", "ro", "rslave"]},
        {"destination": "/run/tmp", "type": "tmpfs", "source": "tmpfs",
         "options": ["rw", "noexec", "nosuid", "nodev", "size=1048576", "mode=700"]},
    ]
    assert spec["volumes"] == [
        {"Name": "db", "Dest": "/var/lib/db", "Options": ["rw", "nocopy"]},
        {"Name": "db", "Dest": "/again", "Options": ["rw"]},
        {"Name": "", "Dest": "/scratch", "Options": ["rw"]},
    ]
    assert spec["cap_drop"] == ["ALL"] and spec["cap_add"] == ["CAP_CHOWN", "CAP_NET_RAW"]
    assert spec["sysctl"] == {"net.ipv4.ip_forward": "1"}
    assert spec["r_limits"] == [{"type": "nofile", "soft": 1024, "hard": 2048},
                                {"type": "core", "soft": RLIM_INFINITY, "hard": RLIM_INFINITY}]
    assert spec["hostadd"] == ["db:10.0.0.7", "db.local:10.0.0.7", "six:fd00::1"]
    assert spec["groups"] == ["1234", "nogroup"]
    assert spec["dns_option"] == ["ndots:2"]
    assert spec["init"] is True and spec["terminal"] is True
    assert spec["read_only_filesystem"] is True


def test_given_ulimits_keep_the_nodes_nofile_and_nproc() -> None:
    """podman would raise nofile and nproc to 1048576 unless they are given: the node's
    own values are given for the ones the spec leaves out."""
    config = ContainerConfig(name="a", image="busybox", ulimits=[Ulimit("nofile", 10, 20)])
    spec = container_spec(config, {"nofile": (1024, 4096), "nproc": (500, -1)})
    assert spec["r_limits"] == [{"type": "nofile", "soft": 10, "hard": 20},
                                {"type": "nproc", "soft": 500, "hard": RLIM_INFINITY}]
    # no ulimits: no rlimits at all (the container inherits the node's)
    assert "r_limits" not in container_spec(ContainerConfig(name="a", image="busybox"),
                                            {"nofile": (1, 2)})


def test_capabilities_of_root_are_exact_and_of_other_users_never_effective_unasked() -> None:
    final = caps.effective(["NET_ADMIN"], ["MKNOD"])
    for root in ("", "root", "0", "0:0", "root:wheel"):
        assert capability_options(final, ["CAP_NET_ADMIN"], root) == {
            "cap_drop": ["ALL"], "cap_add": final}
    # podman makes a non-root process's cap_add effective: only what the spec asked for
    others = capability_options(final, ["CAP_NET_ADMIN"], "nobody")
    assert others["cap_add"] == ["CAP_NET_ADMIN"]
    assert set(others["cap_drop"]) == set(caps.CAPABILITIES) - set(final)
    assert capability_options(final, [], "1000:1000")["cap_add"] == []
    assert capability_options(["CAP_CHOWN", "CAP_KILL"], ["ALL"], "app")["cap_add"] == [
        "CAP_CHOWN", "CAP_KILL"]
    assert image_user({"Config": {"User": "nobody"}}) == "nobody"
    assert image_user({"Config": {}}) == image_user({}) == ""
    spec = container_spec(ContainerConfig(name="a", image="b", capabilities=final), user="app")
    assert spec["cap_add"] == []


def test_proc_limits_parsing() -> None:
    text = ("Limit                     Soft Limit           Hard Limit           Units     \n"
            "Max processes             32768                32768                processes \n"
            "Max open files            1024                 unlimited            files     \n")
    assert proc_rlimits(text) == {"nproc": (32768, 32768), "nofile": (1024, -1)}
    with pytest.raises(ValueError):
        proc_rlimits("Limit Soft Hard\n")


def test_spec_generator_leaves_out_what_is_not_set() -> None:
    spec = container_spec(ContainerConfig(name="a", image="busybox"))
    for key in ("mounts", "volumes", "cap_add", "cap_drop", "sysctl", "r_limits", "hostadd",
                "groups", "init"):
        assert key not in spec, key
    # an empty capability set is still an exact set: everything dropped
    none = container_spec(ContainerConfig(name="a", image="busybox", capabilities=[]))
    assert none["cap_drop"] == ["ALL"] and none["cap_add"] == []


def test_host_entries() -> None:
    assert host_entries(["1.2.3.4 a", "1.2.3.4\tb c"]) == ["a:1.2.3.4", "b:1.2.3.4", "c:1.2.3.4"]


# ------------------------------------------------------------ volume create --

def test_volume_create_body_local_and_tmpfs_size_in_pages() -> None:
    plain = volume_create_body(VolumeConfig("data", labels={"a": "b"}))
    assert plain == {"Name": "data", "Driver": "local", "Label": {"a": "b"}, "Options": {}}
    tmpfs = VolumeConfig("t", driver="local",
                         options={"type": "tmpfs", "device": "tmpfs", "o": "size=1m,mode=0750"})
    body = volume_create_body(tmpfs, page_size=4096)
    assert body["Options"] == {"type": "tmpfs", "device": "tmpfs",
                               "o": "nr_blocks=256,mode=0750"}
    assert volume_create_body(VolumeConfig("t", options={"type": "tmpfs", "o": "size=5000"}),
                              page_size=4096)["Options"]["o"] == "nr_blocks=2"
    assert volume_create_body(VolumeConfig("t", options={"type": "tmpfs", "o": "size=10%"}),
                              total_pages=1000)["Options"]["o"] == "nr_blocks=100"
    # other filesystems get "o" as it is (nfs: addr=..., size= is not touched)
    nfs = VolumeConfig("n", options={"type": "nfs", "o": "addr=10.0.0.1,rw", "device": ":/x"})
    assert volume_create_body(nfs)["Options"] == nfs.options
    with pytest.raises(RuntimeError_) as caught:
        volume_create_body(VolumeConfig("t", options={"type": "tmpfs", "o": "size=lots"}))
    assert "size=lots" in str(caught.value)


def test_volume_driver_checks_and_errors() -> None:
    check_volume_driver(VolumeConfig("v"), {"Driver": "nfsplugin"})   # no driver asked
    check_volume_driver(VolumeConfig("v", driver="local"), {"Driver": "local"})
    with pytest.raises(RuntimeError_) as caught:
        check_volume_driver(VolumeConfig("v", driver="local"), {"Driver": "nfsplugin"})
    assert 'driver "nfsplugin", not "local"' in str(caught.value)
    err = volume_create_error(VolumeConfig("v", driver="rexray"),
                              "no volume plugin with name rexray available: required plugin "
                              "missing", {"plugins": {"volume": ["local"]}})
    assert str(err) == ('volume "v": the volume driver "rexray" is not available on this node '
                        '(it has: local); use the local driver or install the plugin')
    assert str(volume_create_error(VolumeConfig("v"), "disk full", None)) == \
        'volume "v": disk full'


# ------------------------------------------------------------ task config --

def test_container_config_maps_the_issue12_fields() -> None:
    task = make_task("t1")
    spec = task.spec.container
    spec.CopyFrom(spec_with_mounts())
    spec.cap_add.append("CAP_NET_ADMIN")
    spec.cap_drop.append("CAP_MKNOD")
    spec.sysctls["net.core.somaxconn"] = "1024"
    spec.ulimits.add(name="nofile", soft=100, hard=200)
    spec.hosts.append("10.1.1.1 api")
    config = taskspec.container_config(task, "n1", grantable_caps=caps.CAPABILITIES)
    assert config.mounts == mounts.container_mounts(spec)
    assert config.capabilities == caps.effective(["CAP_NET_ADMIN"], ["CAP_MKNOD"])
    assert config.capabilities_requested == ["CAP_NET_ADMIN"]
    assert config.sysctls == {"net.core.somaxconn": "1024"}
    assert config.ulimits == [Ulimit("nofile", 100, 200)]
    assert config.hosts == ["10.1.1.1 api"]
    # without additions or drops: exactly Docker's set
    assert taskspec.container_config(make_task("t2"), "n1").capabilities == \
        list(caps.DOCKER_DEFAULT)


def test_docker_labels_global_task_name_and_stack_namespace() -> None:
    task = make_task("t7", slot=0, node_id="node9")
    task.annotations.labels[STACK_NAMESPACE_LABEL] = "shop"
    labels = taskspec.container_labels(task, "node9")
    assert labels["com.docker.swarm.task.name"] == "web.node9.t7"
    assert labels["com.docker.swarm.node.id"] == "node9"
    assert labels["com.docker.stack.namespace"] == "shop"
    assert labels[taskspec.LABEL_TASK_ID] == "t7"        # adoption's label is still there


# ------------------------------------------------------- controller paths --

async def test_missing_bind_source_rejects_the_task_before_any_container() -> None:
    task = make_task("b1")
    task.spec.container.mounts.add(type=pb.Mount.BIND, source="/no/such/dir/for/shoal",
                                   target="/x")
    h = Harness(task)
    rejected = await h.until(pb.REJECTED)
    assert rejected.message == "preparing"
    assert rejected.err == ('invalid mount config for type "bind": bind source path does not '
                            'exist: /no/such/dir/for/shoal')
    assert h.runtime.count("create") == 0
    assert h.states == [pb.ACCEPTED, pb.PREPARING, pb.REJECTED]


async def test_named_volumes_are_ensured_before_the_container_is_created() -> None:
    task = make_task("v1")
    task.spec.container.CopyFrom(spec_with_mounts())
    task.spec.container.mounts[0].source = "/"      # a bind source that exists
    h = Harness(task)
    running = await h.until(pb.RUNNING)
    ops = [op for op, _ in h.runtime.calls]
    assert ops.index("volume") < ops.index("create")
    assert h.runtime.count("volume") == 1
    assert h.runtime.volumes["db"].options == {"type": "tmpfs", "device": "tmpfs"}
    config = h.runtime.configs[running.container_status.container_id]
    assert [m.target for m in config.mounts] == ["/data", "/var/lib/db", "/again", "/scratch",
                                                 "/run/tmp"]


async def test_volume_failure_and_unknown_capability_reject() -> None:
    rt = FakeRuntime()
    rt.volume_errors["db"] = 'volume "db": the volume driver "x" is not available on this node'
    task = make_task("v2")
    task.spec.container.mounts.add(type=pb.Mount.VOLUME, source="db", target="/db")
    rejected = await Harness(task, rt).until(pb.REJECTED)
    assert rejected.err == rt.volume_errors["db"] and rt.count("create") == 0
    bad = make_task("c1")
    bad.spec.container.cap_add.append("CAP_FLY")
    rejected = await Harness(bad).until(pb.REJECTED)
    assert rejected.err == 'unknown capability: "CAP_FLY"'
