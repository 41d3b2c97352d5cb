#!/bin/bash
# Installs Shoal's systemd unit, shoal@.service (scripts/systemd/shoal@.service), as root:
#   scripts/install-unit.sh [--unit-dir DIR] [--swarm PATH] [DATA_DIR]
# --unit-dir: where to write it (default /etc/systemd/system; then `systemctl
#             daemon-reload` runs when systemd is the running service manager)
# --swarm:    the `swarm` command the unit starts (default: the venv's, made by
#             scripts/setup.sh)
# DATA_DIR:   the node's data directory (default /var/lib/shoal): only used to print
#             the command that enables the unit for it.
# Idempotent: installing again overwrites the unit with the same content.
set -eu
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
UNIT_DIR=/etc/systemd/system
SWARM="$REPO/.venv/bin/swarm"
DATA_DIR=/var/lib/shoal
while [ $# -gt 0 ]; do
    case "$1" in
        --unit-dir) UNIT_DIR="$2"; shift 2 ;;
        --swarm) SWARM="$2"; shift 2 ;;
        -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "install-unit.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
        *) DATA_DIR="$1"; shift ;;
    esac
done
if [ ! -x "$SWARM" ]; then
    echo "install-unit.sh: $SWARM is not an executable: run scripts/setup.sh first, or give --swarm PATH" >&2
    exit 1
fi
case "$DATA_DIR" in
    /*) ;;
    *) echo "install-unit.sh: the data directory must be an absolute path, not $DATA_DIR" >&2; exit 2 ;;
esac
mkdir -p "$UNIT_DIR"
sed -e "s|@SWARM@|$SWARM|g" -e "s|@REPO@|$REPO|g" "$REPO/scripts/systemd/shoal@.service" \
    > "$UNIT_DIR/shoal@.service.tmp"
mv "$UNIT_DIR/shoal@.service.tmp" "$UNIT_DIR/shoal@.service"
echo "installed $UNIT_DIR/shoal@.service (ExecStart=$SWARM daemon --foreground --data-dir %f)"
INSTANCE="shoal@$(systemd-escape --path "$DATA_DIR").service"
if [ "$UNIT_DIR" = /etc/systemd/system ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    echo "systemd reloaded"
else
    echo "systemd is not the running service manager here: no daemon-reload"
fi
echo "enable it for $DATA_DIR (a node made by swarm init/join) with:"
echo "  systemctl enable --now $INSTANCE"
