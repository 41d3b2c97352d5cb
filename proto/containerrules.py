"""Names a container spec may use, shared by the manager's checks and the CLI's.

Owns the Linux capability names the manager accepts (canonical `CAP_` form, up
to Linux 5.9, plus `ALL`) and the sysctls a container may set (those of its own
namespaces, as Docker allows). manager/validation.py refuses anything else in
a spec; cli/compose/rules.py refuses it when a Compose file is loaded, with
the same words. Pure data.
"""
from __future__ import annotations

CAPABILITIES = frozenset("CAP_" + name for name in (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID",
    "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN",
    "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE",
    "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME",
    "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ",
    "PERFMON", "BPF", "CHECKPOINT_RESTORE"))
ALL_CAPABILITIES = "ALL"
NAMESPACED_SYSCTLS = frozenset({"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni",
                                "kernel.sem", "kernel.shmall", "kernel.shmmax",
                                "kernel.shmmni", "kernel.shm_rmid_forced"})
NAMESPACED_SYSCTL_PREFIXES = ("net.", "fs.mqueue.")
