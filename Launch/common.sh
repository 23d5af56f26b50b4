# Shared by the Launch/ scripts: paths, the Debian packages the project needs, and an mpirun
# that works as root and with more ranks than cores. Source it; do not run it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$ROOT/.build/release/xbm-dist"

# Build and run dependencies (README.md, Docs/data.md).
BUILD_PACKAGES=(pkg-config libopenmpi-dev openmpi-bin libopenblas-dev libfreetype-dev)
FONT_PACKAGES=(fonts-noto-cjk fonts-noto-cjk-extra fonts-arphic-gbsn00lp fonts-arphic-gkai00mp
    fonts-arphic-ukai fonts-arphic-uming fonts-babelstone-han fonts-droid-fallback fonts-hanazono
    fonts-lxgw-wenkai fonts-seto fonts-wqy-microhei fonts-wqy-zenhei)

log() { printf '\033[1m[%s]\033[0m %s\n' "$(basename "$0")" "$*" >&2; }

# mpirun with what this kind of machine needs: root is allowed explicitly, more ranks than
# cores are allowed (2 cores, 4 ranks), ranks are not pinned to one core each, and the
# OpenBLAS thread count is left to xbm-dist (cores / ranks on the node, or --threads).
mpirun_xbm() {
    local extra=(--oversubscribe --bind-to none)
    if [ "$(id -u)" = 0 ]; then extra+=(--allow-run-as-root); fi
    OMPI_MCA_rmaps_base_oversubscribe=1 mpirun "${extra[@]}" "$@"
}
