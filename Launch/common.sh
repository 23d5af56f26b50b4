# Shared by the Launch/ scripts: paths, the Debian packages the project needs, and an mpirun
# that works as root and with more ranks than cores. Source it; do not run it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$ROOT/.build/release/xbm-dist"

# Build dependencies (README.md). The fonts of the hanzi benchmark are listed by the
# program itself: `xbm-dist data fonts --packages` (Docs/data.md). JPEG, PNG and MATLAB
# files are read by `xbm-dist data import` (Docs/datasets.md); zlib by ZIPFoundation (.npz).
BUILD_PACKAGES=(pkg-config libopenmpi-dev openmpi-bin libopenblas-dev libfreetype-dev zlib1g-dev
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

# The CPU the release build is compiled for: this machine's vector units, so the kernels that
# are ours rather than OpenBLAS' (batch norm, im2col, pooling, the first convolution, the
# loss passes) run as AVX2+FMA or AVX-512 code instead of the SSE2 of a generic x86-64 build
# (Docs/performance.md). XBM_TARGET_CPU=generic builds a binary for any x86-64, e.g. for a
# cluster whose nodes differ; any other value is passed to swiftc as -target-cpu.
target_cpu() {
    if [ -n "${XBM_TARGET_CPU:-}" ]; then echo "$XBM_TARGET_CPU"; return; fi
    [ "$(uname -m)" = x86_64 ] || { echo generic; return; }
    local flags; flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
    if [[ $flags == *" avx512f "* && $flags == *" avx512bw "* && $flags == *" avx512dq "* && $flags == *" avx512vl "* ]]; then
        echo skylake-avx512
    elif [[ $flags == *" avx2 "* && $flags == *" fma "* ]]; then
        echo haswell
    else
        echo generic
    fi
}

# The x86-64 level a -target-cpu implies (x86-64-v3: AVX2, FMA, BMI; v4: AVX-512 F/CD/BW/DQ/VL),
# which the binary checks the CPU for at start-up (BuildTarget in Sources/XBMKernels/CPUCheck.swift).
target_level() {
    case "$1" in
        skylake-avx512|cascadelake|cooperlake|cannonlake|icelake-client|icelake-server|tigerlake|rocketlake|sapphirerapids|emeraldrapids|graniterapids|znver4|znver5|x86-64-v4) echo X86_64_V4 ;;
        haswell|broadwell|skylake|alderlake|raptorlake|meteorlake|znver1|znver2|znver3|x86-64-v3) echo X86_64_V3 ;;
        *) echo "" ;;
    esac
}

# `swift build -c release` of xbm-dist for `target_cpu`; extra arguments are passed on.
release_build() {
    local cpu level; cpu="$(target_cpu)"; level="$(target_level "$cpu")"
    local flags=()
    [ "$cpu" = generic ] || flags=(-Xswiftc -target-cpu -Xswiftc "$cpu")
    if [ -n "$level" ]; then
        flags+=(-Xswiftc "-DXBM_BUILT_FOR_$level")
    elif [ "$cpu" != generic ]; then
        log "note: target CPU $cpu is not in target_level (Launch/common.sh): the binary cannot check at start-up that a CPU has what it was built for"
    fi
    log "building release (target CPU: $cpu)"
    swift build -c release "${flags[@]}" "$@" 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\]' >&2 || true
    test -x "$BIN" || { log "release build failed"; exit 1; }
}

# tbf on interface $2 of network namespace $1 (Launch/netlink, Launch/slurm-local): rate $3
# Gbit/s, a bucket of 1 ms of traffic (at least 32 KiB: with a 100 µs bucket the qdisc's timer,
# late on a loaded machine, cut a 1 Gbit/s link to a third) and a queue of 5 ms, shallow like a
# switch port's.
tbf_limit() {
    local ns="$1" dev="$2" gbit="$3"
    local burst; burst="$(awk -v g="$gbit" 'BEGIN { b = int(g * 1e9 / 8 * 1e-3); print (b > 32768 ? b : 32768) }')"
    ip netns exec "$ns" tc qdisc replace dev "$dev" root tbf rate "${gbit}gbit" burst "$burst" latency 5ms ||
        { log "tc tbf failed on $dev: is the sch_tbf module available (modprobe sch_tbf)?"; exit 1; }
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
