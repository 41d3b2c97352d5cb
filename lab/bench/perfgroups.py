"""Groups a `perf record -a` profile by kernel subsystem, per unit of work.

Used for the data plane profiles in design/overlay-dataplane.md: record the
same amount of work on two paths (e.g. `perf record -a -o a.data -- iperf3 ...
-n 15G`), then `python -m lab.bench.perfgroups a.data b.data --units 15 15
--names underlay overlay --per GB` prints, per group, milliseconds of CPU (both
cores together) per unit. Grouping is by the sampled function's name.
"""
from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys

GROUPS: tuple[tuple[str, str], ...] = (
    ("idle", r"safe_halt|cpu_idle|default_idle"),
    ("conntrack, NAT, nftables", r"^(__)?nf_|nft_|conntrack|siphash|nf_nat"),
    ("bridge", r"^br_|fdb_|^__br"),
    ("VXLAN and UDP tunnel", r"vxlan|udp_tunnel|iptunnel|gro_cell|udp4|udp_|__udp|dst_cache"),
    ("routing", r"fib_|ip_route|rt_|dst_"),
    ("copies to and from user space", r"copy_(to|from)_iter|memcpy|copy_user"),
    ("TCP", r"^tcp_|^__tcp|inet_|__inet"),
    ("device layer (veth, backlog, NAPI, skb)",
     r"veth|netif|dev_|napi|net_rx|process_backlog|skb|__dev|eth_type"),
)
OTHER = "other (system calls, scheduler, locks, memory)"
SAMPLE = re.compile(r"\s+(\d+)\s+\[.\]\s+(\S+)")


def group_of(symbol: str) -> str:
    """The group a kernel function belongs to (first match wins)."""
    for name, pattern in GROUPS:
        if re.search(pattern, symbol):
            return name
    return OTHER


def grouped(report: str) -> collections.Counter:
    """Samples per group from `perf report --sort symbol -F sample,sym` text."""
    counts: collections.Counter = collections.Counter()
    for line in report.splitlines():
        match = SAMPLE.match(line)
        if match:
            counts[group_of(match.group(2))] += int(match.group(1))
    return counts


def _report(path: str) -> tuple[collections.Counter, float]:
    """Samples per group, and the sampling frequency (Hz)."""
    text = subprocess.run(["perf", "report", "-i", path, "--no-children", "--sort", "symbol",
                           "--stdio", "-F", "sample,sym"], capture_output=True, text=True,
                          check=True).stdout
    header = subprocess.run(["perf", "report", "-i", path, "--header-only"],
                            capture_output=True, text=True, check=True).stdout
    freq = re.search(r"sample_freq \} = (\d+)", header)
    return grouped(text), float(freq.group(1)) if freq else 4000.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profiles", nargs="+", help="perf.data files")
    parser.add_argument("--units", nargs="+", type=float, required=True,
                        help="work done in each profile (GB, thousands of connections...)")
    parser.add_argument("--names", nargs="+", help="column names")
    parser.add_argument("--per", default="unit", help="what one unit is (for the header)")
    args = parser.parse_args(argv)
    names = args.names or args.profiles
    if not len(args.profiles) == len(args.units) == len(names):
        parser.error("give one --units value (and name) per profile")
    columns = []
    for path, units in zip(args.profiles, args.units):
        counts, freq = _report(path)
        columns.append({g: v / freq * 1000 / units for g, v in counts.items()})
    print(f"{'ms of CPU per ' + args.per:<45}" + "".join(f"{n:>14}" for n in names))
    for group in [g for g, _ in GROUPS] + [OTHER]:
        print(f"{group:<45}" + "".join(f"{c.get(group, 0.0):>14.1f}" for c in columns))
    print(f"{'busy total':<45}" + "".join(
        f"{sum(v for g, v in c.items() if g != 'idle'):>14.1f}" for c in columns))
    return 0


if __name__ == "__main__":
    sys.exit(main())
