#!/usr/bin/env bash
# The whole check, as CI runs it: install and start the real components
# (scripts/services.sh), then rustfmt, clippy, build, and every test including
# the #[ignore]d real-component ones. Stops the components it started on exit.
# Every step runs even if an earlier check failed; the exit code is non-zero if
# any failed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/common.sh
source scripts/lib/common.sh
DA_LOG_TAG=test.sh

# A lease: a concurrent run, or services started by hand, keep them running.
export DA_SERVICES_LEASE=$$
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

T0=$(da_now_ms)
TIMINGS=()
FAILED=()

# step NAME CMD...: runs CMD, records its time and whether it failed.
step() {
    local name=$1 t rc=0
    shift
    t=$(da_now_ms)
    da_log "== $name: $*"
    "$@" </dev/null || rc=$?
    TIMINGS+=("$name $(da_since "$t")$( ((rc == 0)) || echo " (FAILED, exit $rc)")")
    ((rc == 0)) || FAILED+=("$name")
    return "$rc"
}

finish() {
    local rc=$?
    trap - EXIT
    # Keep the closing lines for cargo's own summary: stop quietly.
    bash scripts/services.sh stop >"${SERVICES_STOP_LOG:-/dev/null}" 2>&1 || echo "warning: scripts/services.sh stop failed" >&2
    local line="" t
    for t in "${TIMINGS[@]}"; do line+="$t, "; done
    echo "test.sh timings: ${line}total $(da_since "$T0")"
    if ((${#FAILED[@]})); then
        echo "test.sh FAILED: ${FAILED[*]}"
        ((rc != 0)) || rc=1
    fi
    exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Without the components nothing below is meaningful: fail at once.
step install bash scripts/services.sh install
step services bash scripts/services.sh start
# shellcheck source=/dev/null
source .da-services/env

step fmt cargo fmt --all --check -- --color=never || true
step build cargo build --all-targets || true
step clippy cargo clippy --all-targets -- -D warnings || true
# Last, so cargo's summary is what the run ends with.
step test cargo test --all-targets -- --include-ignored || true
