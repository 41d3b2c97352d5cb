#!/bin/bash
# Installs Shoal's systemd unit, shoal@.service (scripts/systemd/shoal@.service), as root:
#   scripts/install-unit.sh [--unit-dir DIR] [--swarm PATH] [DATA_DIR]
# --unit-dir: where to write it (default /etc/systemd/system). `systemctl
#             daemon-reload` runs whenever systemd is the running service manager
#             (/run/systemd/system exists; $SHOAL_SYSTEMD_RUN_DIR names another
#             directory to look for, for tests)
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
SYSTEMD_RUN_DIR="${SHOAL_SYSTEMD_RUN_DIR:-/run/systemd/system}"
fail() { echo "install-unit.sh: $2" >&2; exit "$1"; }
needs_value() {  # $1 option, $2 what it names, $3 number of arguments left
    [ "$3" -ge 2 ] || fail 2 "$1 needs a $2 after it (see --help)"
}
while [ $# -gt 0 ]; do
    case "$1" in
        --unit-dir) needs_value "$1" directory $#; UNIT_DIR="$2"; shift 2 ;;
        --swarm) needs_value "$1" "path of the swarm command" $#; SWARM="$2"; shift 2 ;;
        -h|--help) sed -n '2,/^set -eu$/p' "$0" | sed -n 's/^# \{0,1\}//p'; exit 0 ;;
        -*) fail 2 "unknown option $1 (see --help)" ;;
        *) DATA_DIR="$1"; shift ;;
    esac
done
[ -n "$UNIT_DIR" ] || fail 2 "--unit-dir is empty: give the directory to write the unit to"
if [ ! -x "$SWARM" ]; then
    fail 1 "$SWARM is not an executable: run scripts/setup.sh first, or give --swarm PATH"
fi
case "$DATA_DIR" in
    /*) ;;
    *) fail 2 "the data directory must be an absolute path, not $DATA_DIR" ;;
esac
for value in "$SWARM" "$REPO"; do
    case "$value" in
        *$'\n'*) fail 2 "a path with a newline cannot go into a unit file: $value" ;;
    esac
done
# everything that can fail is checked before anything is written or reported
command -v systemd-escape >/dev/null 2>&1 \
    || fail 1 "systemd-escape not found: install systemd (it names the unit's instance)"
INSTANCE="shoal@$(systemd-escape --path "$DATA_DIR").service"
# sed's replacement treats \ & and the delimiter | specially: escape them
sed_literal() { printf '%s' "$1" | sed -e 's/[\\|&]/\\&/g'; }
mkdir -p "$UNIT_DIR"
sed -e "s|@SWARM@|$(sed_literal "$SWARM")|g" -e "s|@REPO@|$(sed_literal "$REPO")|g" \
    "$REPO/scripts/systemd/shoal@.service" > "$UNIT_DIR/shoal@.service.tmp"
mv "$UNIT_DIR/shoal@.service.tmp" "$UNIT_DIR/shoal@.service"
echo "installed $UNIT_DIR/shoal@.service (ExecStart=$SWARM daemon --foreground --data-dir %f)"
if [ -d "$SYSTEMD_RUN_DIR" ]; then
    systemctl daemon-reload
    echo "systemd reloaded"
else
    echo "no daemon-reload: systemd is not the running service manager here ($SYSTEMD_RUN_DIR does not exist)"
fi
echo "enable it for $DATA_DIR (a node made by swarm init/join) with:"
echo "  systemctl enable --now $INSTANCE"
