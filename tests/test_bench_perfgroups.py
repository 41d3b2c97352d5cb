"""Unit tests of lab.bench.perfgroups: kernel functions into subsystem groups."""
from __future__ import annotations

from lab.bench.perfgroups import OTHER, group_of, grouped


def test_functions_fall_into_their_groups() -> None:
    assert group_of("__nf_conntrack_find_get") == "conntrack, NAT, nftables"
    assert group_of("nft_do_chain") == "conntrack, NAT, nftables"
    assert group_of("br_handle_frame") == "bridge"
    assert group_of("fdb_find_rcu") == "bridge"
    assert group_of("vxlan_rcv") == "VXLAN and UDP tunnel"
    assert group_of("fib_table_lookup") == "routing"
    assert group_of("_copy_to_iter") == "copies to and from user space"
    assert group_of("tcp_sendmsg_locked") == "TCP"
    assert group_of("veth_xmit") == "device layer (veth, backlog, NAPI, skb)"
    assert group_of("pv_native_safe_halt") == "idle"
    assert group_of("_raw_spin_unlock_irqrestore") == OTHER


def test_report_lines_are_summed_per_group() -> None:
    report = """# comment
     1200  [k] _copy_from_iter
      300  [k] _copy_to_iter
       50  [k] br_handle_frame
        7  [.] some_user_function
"""
    counts = grouped(report)
    assert counts["copies to and from user space"] == 1500
    assert counts["bridge"] == 50
    assert counts[OTHER] == 7
