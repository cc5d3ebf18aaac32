#!/usr/bin/env bash
# Benchmarks for deploy-action. Not a timed test: it prints numbers for a human.
#
#   scripts/bench.sh race [N...]   (default: 8 32 64 128)
#   scripts/bench.sh writeback [MiB...]   (default: 10 200 1024)
#   scripts/bench.sh build        (see scripts/lib/bench-build.sh)
#
# race: N jobs, released together through a start barrier, each set one service's newTag in the
# same overlay on `main` of a bare repo served by `git daemon --enable=receive-pack` on
# 127.0.0.1 whose pre-receive hook sleeps 0.3 s (each push holds the branch that long, so N
# updates need at least N x 0.3 s: the floor). Three methods, each on a fresh repo:
#   ours      the deploy-action binary (release build), build: false, default inputs
#   reapply   a shell re-apply loop: fetch, reset --hard, sed the line, commit, push;
#             full jitter with a 0.5 s base and an 8 s cap, 20 tries
#   rebase    `until git push; do git pull --rebase; done`, 5 tries
# For each N and method it prints landed/N, failed jobs, the median and most attempts one job
# needed (ours: pushes that reached the server on the current tip; the shells: pushes), the
# 90th percentile, pushes sent to the server per landed update (ours: attempts plus pushes found
# stale in negotiation; the shells: every push), fetches per landed update (the shells: each
# fetch or pull), our looks at the ref advertisement per landed update (no negotiation, no pack:
# how we wait for a landing), our lost races, stale pushes and connection
# retries, the wall time, and when updates landed (a post-update hook logs each): the first
# landing after the release and the median and shortest gaps between landings. Then, per
# method, the median wall, ours/reapply and ours/floor, and the wall taken apart: the first
# landing, (landed - 1) x the shortest gap (what one update costs the server at best: fetch,
# push, hook) and the time waited beyond it (nobody was pushing on the new tip).
#
# writeback: a monorepo whose tip holds MiB of incompressible files under backend/, a depth-1
# checkout of it, and a sibling job's commit landed after the checkout, over git daemon. One job
# sets one tag: ours (build: false) against the shell re-apply loop from the same kind of
# checkout (fetch, reset, edit, commit, push). Prints seconds and bytes fetched for each,
# DA_BENCH_ROUNDS times (default 3), as medians and ours/shell.
#
# Env: DA_BENCH_BIN (binary to run; default: cargo build --release, then target/release),
#      DA_BENCH_HOOK_SECONDS (the hook's sleep, default 0.3), DA_BENCH_METHODS (default
#      "ours reapply rebase"), DA_BENCH_ROUNDS (default 1: run the methods, interleaved, this
#      many times and compare medians; a shared machine is noisy), DA_BENCH_KEEP=1 (keep the
#      scratch dir).
# Starts its own git daemon on a free port and stops it, and removes its scratch dir, on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib/common.sh
source "$ROOT/scripts/lib/common.sh"
DA_LOG_TAG=bench
OVERLAY=k8s/infrastructure/overlays/staging
FILE=$OVERLAY/kustomization.yaml
HOOK_SECONDS=${DA_BENCH_HOOK_SECONDS:-0.3}
HOOK="sleep $HOOK_SECONDS"
METHODS=${DA_BENCH_METHODS:-ours reapply rebase}

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
    exit 2
}

# BIN: DA_BENCH_BIN, else a release build of this checkout.
bench_bin() {
    if [[ -n ${DA_BENCH_BIN:-} ]]; then
        BIN=$DA_BENCH_BIN
    else
        da_log "building the release binary"
        (cd "$ROOT" && cargo build --release --quiet --bin deploy-action)
        BIN=$ROOT/target/release/deploy-action
    fi
    [[ -x $BIN ]] || da_die "no binary at $BIN"
}

# drop_scratch DIR: removes DIR, or with DA_BENCH_KEEP=1 keeps it and says where.
drop_scratch() {
    [[ -n $1 ]] || return 0
    if [[ ${DA_BENCH_KEEP:-0} != 1 ]]; then
        rm -rf "$1"
    else
        da_log "kept $1"
    fi
}

# ---------------------------------------------------------------- setup

WORK=
DAEMON_PID=
cleanup() {
    if [[ -n $DAEMON_PID ]]; then
        kill "$DAEMON_PID" 2>/dev/null || true
        wait "$DAEMON_PID" 2>/dev/null || true
    fi
    drop_scratch "$WORK"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_daemon() {
    local port
    port=$(free_port)
    mkdir -p "$WORK/git"
    # --max-connections=0: the default (32) makes git daemon kill a connection from the same
    # address when N clients push at once, which would measure the daemon, not the methods.
    git daemon --reuseaddr --listen=127.0.0.1 "--port=$port" "--base-path=$WORK/git" \
        --export-all --enable=receive-pack --max-connections=0 "$WORK/git" \
        >"$WORK/git-daemon.log" 2>&1 &
    DAEMON_PID=$!
    da_wait "git daemon" 10 "$WORK/git-daemon.log" "$DAEMON_PID" da_port_open "$port"
    URL_BASE=git://127.0.0.1:$port
    da_log "git daemon on $URL_BASE (pid $DAEMON_PID)"
}

median() { tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }


case ${1:-} in
race)
    shift
    # shellcheck source=scripts/lib/bench-race.sh
    source "$ROOT/scripts/lib/bench-race.sh"
    bench_race "$@"
    ;;
writeback)
    shift
    # shellcheck source=scripts/lib/bench-writeback.sh
    source "$ROOT/scripts/lib/bench-writeback.sh"
    bench_writeback "$@"
    ;;
build)
    shift
    # shellcheck source=scripts/lib/bench-build.sh
    source "$ROOT/scripts/lib/bench-build.sh"
    bench_build "$@"
    ;;
*) usage ;;
esac
