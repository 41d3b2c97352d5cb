#!/bin/bash
# Prepares a Debian 12 machine to run Shoal and its tests (as root, no stdin,
# idempotent): packages, podman configuration, cgroup fix-up, the venv, and the
# `swarm` and `swarm-lab` commands on the PATH (links in /usr/local/bin).
# Every step prints "ok" or "FAILED: <why>"; the script exits non-zero if any failed.
set -u
export DEBIAN_FRONTEND=noninteractive
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FAILED=()

step() {  # step "<description>" <command...>
    local what="$1"; shift
    local out
    if out="$("$@" 2>&1)"; then
        echo "ok      $what"
    else
        echo "FAILED  $what"
        echo "$out" | tail -n 20 | sed 's/^/        | /'
        FAILED+=("$what")
    fi
}

if [ "$(id -u)" != 0 ]; then
    echo "FAILED  scripts/setup.sh must run as root" >&2
    exit 1
fi

PACKAGES=(podman crun netavark aardvark-dns conmon catatonit uidmap slirp4netns
          docker-registry busybox-static nftables iproute2
          python3 python3-venv python3-pip git ca-certificates
          prometheus   # tests/test_e2e_metrics.py scrapes a lab with the real server
          chromium     # tests/test_e2e_ui.py drives the `swarm ui` page headless
          golang-cfssl # tests/test_e2e_certs.py signs node certificates with `cfssl serve`
          iperf3 apache2-utils nginx-light)   # lab.bench.overlay and its tests: C tools

install_packages() {
    local missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "installing: ${missing[*]}"
    # No packaged service starts during the install (nginx would take :80, the
    # registry :5000): the lab and the tests start their own instances.
    local guard=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
        guard=1
    fi
    local rc=0
    apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}" || rc=$?
    [ -n "$guard" ] && rm -f /usr/sbin/policy-rc.d
    return $rc
}
step "apt packages (${PACKAGES[*]})" install_packages

# The Debian docker-registry package starts a registry with htpasswd auth on
# :5000 where an init system runs it; the lab runs its own (lab/images.py), so
# keep the packaged one stopped if there is a service manager at all.
stop_packaged_registry() {
    if command -v systemctl >/dev/null && systemctl is-system-running >/dev/null 2>&1; then
        systemctl disable --now docker-registry >/dev/null 2>&1 || true
        # likewise Debian's prometheus (:9090): tests start their own on a free port
        systemctl disable --now prometheus >/dev/null 2>&1 || true
        systemctl disable --now nginx >/dev/null 2>&1 || true     # :80; benches run their own
    fi
    return 0
}
step "packaged docker-registry and prometheus services not in the way" stop_packaged_registry

# podman 4.3 reads /etc/containers/containers.conf.d/*.conf. Default ulimits
# above the host's hard limits make every container fail with
# "setrlimit RLIMIT_NOFILE: Operation not permitted" (rlimit type 7).
write_containers_conf() {
    mkdir -p /etc/containers/containers.conf.d
    cat > /etc/containers/containers.conf.d/shoal.conf <<'CONF'
# Written by shoal scripts/setup.sh
[containers]
# never raise rlimits: containers inherit the host's limits
default_ulimits = []
CONF
}
step "/etc/containers/containers.conf.d/shoal.conf (default_ulimits = [])" write_containers_conf

write_registries_conf() {
    mkdir -p /etc/containers/registries.conf.d
    cat > /etc/containers/registries.conf.d/shoal-lab.conf <<'CONF'
# Written by shoal scripts/setup.sh: the lab's local registry speaks plain HTTP
[[registry]]
location = "127.0.0.1:5000"
insecure = true
CONF
}
step "/etc/containers/registries.conf.d/shoal-lab.conf (127.0.0.1:5000 insecure)" write_registries_conf

# crun refuses "hybrid" cgroup hosts (v1 hierarchies plus a cgroup2 mount that
# still owns controllers): "cgroups in hybrid mode not supported, drop all
# controllers from cgroupv2". Binding those controllers to v1 hierarchies
# empties the v2 side. Not persistent: run this script again after a reboot.
fix_hybrid_cgroups() {
    local unified=/sys/fs/cgroup/unified
    [ -f "$unified/cgroup.controllers" ] || return 0
    [ -d /sys/fs/cgroup/memory ] || return 0          # pure v2 host: nothing to do
    local c
    for c in $(cat "$unified/cgroup.controllers"); do
        mkdir -p "/sys/fs/cgroup/$c"
        mountpoint -q "/sys/fs/cgroup/$c" || mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c" || return 1
    done
    [ -z "$(cat "$unified/cgroup.controllers")" ]
}
step "cgroup v2 side of a hybrid host holds no controllers (crun)" fix_hybrid_cgroups

check_podman() {
    podman info --format '{{.Host.OCIRuntime.Name}} {{.Host.NetworkBackend}}'
}
step "podman info" check_podman

make_venv() {
    cd "$REPO" || return 1
    [ -x .venv/bin/python ] || python3 -m venv .venv || return 1
    # compat mode: a plain path entry, not an import hook (the hook imports pathlib and
    # friends at every interpreter start: ~10 ms on each swarm command)
    .venv/bin/pip install -q -e '.[test]' --config-settings editable_mode=compat
}
step "python venv at $REPO/.venv with shoal[test]" make_venv

# Every new shell finds the commands: /usr/local/bin is on Debian's default PATH
# (login shells, sudo's secure_path, systemd units). Links, so that the venv's
# entry points (and the repository they run) stay the single copy. A file there
# that is not such a link (another tool's `swarm`) is left alone: the step fails.
link_commands() {
    local name target link
    for name in swarm swarm-lab; do
        target="$REPO/.venv/bin/$name"
        link="/usr/local/bin/$name"
        [ -x "$target" ] || { echo "$target is missing (the venv step failed?)"; return 1; }
        if [ -e "$link" ] && [ ! -L "$link" ]; then
            echo "$link exists and is not a link: remove it to let setup link $target"
            return 1
        fi
        ln -sfn "$target" "$link" || return 1
        [ -x "$link" ] || { echo "$link does not lead to an executable"; return 1; }
    done
}
step "swarm and swarm-lab on the PATH (/usr/local/bin -> $REPO/.venv/bin)" link_commands

if [ ${#FAILED[@]} -ne 0 ]; then
    echo
    echo "setup incomplete; failed steps:"
    printf '  - %s\n' "${FAILED[@]}"
    exit 1
fi
echo
echo "setup complete: swarm and swarm-lab are on the PATH"
echo "run a node as a systemd service: scripts/install-unit.sh (see README, Operating Shoal)"
