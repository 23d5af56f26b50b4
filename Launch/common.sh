# Shared by the Launch/ scripts: paths, the Debian packages the project needs, and an mpirun
# that works as root and with more ranks than cores. Source it; do not run it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$ROOT/.build/release/xbm-dist"

# Build dependencies (README.md). The fonts of the hanzi benchmark are listed by the
# program itself: `xbm-dist data fonts --packages` (Docs/data.md). JPEG, PNG and MATLAB
# files are read by `xbm-dist data import` (Docs/datasets.md).
BUILD_PACKAGES=(pkg-config libopenmpi-dev openmpi-bin libopenblas-dev libfreetype-dev
                libjpeg62-turbo-dev libpng-dev libmatio-dev)

# Installs the Debian packages among "$@" that are missing (apt-get, with sudo unless root).
install_missing() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    log "installing ${missing[*]}"
    local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

log() { printf '\033[1m[%s]\033[0m %s\n' "$(basename "$0")" "$*" >&2; }

# mpirun with what this kind of machine needs: root is allowed explicitly, more ranks than
# cores are allowed (2 cores, 4 ranks), ranks are not pinned to one core each, and the
# OpenBLAS thread count is left to xbm-dist (cores / ranks on the node, or --threads).
mpirun_xbm() {
    local extra=(--oversubscribe --bind-to none)
    if [ "$(id -u)" = 0 ]; then extra+=(--allow-run-as-root); fi
    OMPI_MCA_rmaps_base_oversubscribe=1 mpirun "${extra[@]}" "$@"
}

# The process ids of the xbm-dist ranks below process $1 (an mpirun, or a shell running one),
# so that scripts signal their own ranks and never another job's.
rank_pids() {
    local child
    for child in $(pgrep -P "$1"); do
        [ "$(cat "/proc/$child/comm" 2>/dev/null)" = xbm-dist ] && echo "$child"
        rank_pids "$child"
    done
}
