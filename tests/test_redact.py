"""Keys and secret data never leave through the control or Watch API (manager/redact.py)."""
from __future__ import annotations

from manager import redact
from manager.watchapi import outgoing
from proto import objects_pb2 as pb
from proto import watch_pb2 as wpb


def _keyed_cluster() -> pb.Cluster:
    c = pb.Cluster(id="c", root_ca_cert=b"CERT", root_ca_key=b"ROOTKEY", unlock_key="SWMKEY-1-x")
    c.root_rotation.ca_cert = b"NEWCERT"
    c.root_rotation.ca_key = b"NEWKEY"
    c.network_keys.add(id=1, key=b"K" * 32, primary=True)
    return c


def _no_keys(c: pb.Cluster) -> bool:
    return (not c.root_ca_key and not c.root_rotation.ca_key and not c.network_keys
            and not c.unlock_key)


def test_cluster_answers_carry_no_keys_and_leave_the_store_object_alone() -> None:
    c = _keyed_cluster()
    out = redact.cluster(c)
    assert _no_keys(out)
    assert out.root_ca_cert == b"CERT" and out.root_rotation.ca_cert == b"NEWCERT"
    assert c.root_ca_key == b"ROOTKEY" and c.unlock_key     # a copy was changed
    plain = pb.Cluster(id="p", root_ca_cert=b"CERT")
    assert redact.cluster(plain) is plain


def test_watch_events_strip_cluster_keys_in_object_and_old_object() -> None:
    c = _keyed_cluster()
    ev = wpb.WatchEvent(action=wpb.WatchEvent.UPDATE, version=3)
    ev.object.cluster.CopyFrom(c)
    ev.old_object.cluster.CopyFrom(c)
    out = outgoing(ev, include_old=True)
    assert _no_keys(out.object.cluster) and _no_keys(out.old_object.cluster)
    assert out.object.cluster.root_ca_cert == b"CERT" and out.version == 3
    assert ev.object.cluster.root_ca_key == b"ROOTKEY"
    assert not outgoing(ev, include_old=False).HasField("old_object")


def test_watch_events_strip_secret_data() -> None:
    ev = wpb.WatchEvent(action=wpb.WatchEvent.CREATE, version=1)
    ev.object.secret.spec.annotations.name = "db"
    ev.object.secret.spec.data = b"hunter2"
    out = outgoing(ev, include_old=False)
    assert out.object.secret.spec.data == b"" and out.object.secret.spec.annotations.name == "db"
