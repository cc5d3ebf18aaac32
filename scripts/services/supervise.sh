# shellcheck shell=bash
# What scripts/services.sh needs to supervise its components: the component
# table, config rendering, start signatures, reuse of a healthy instance, the
# state lock and leases. Sourced by scripts/services.sh, which sets STATE and PIDS.

COMPONENTS=()
declare -A MARKER=() STOP_TIMEOUT=()

# component NAME MARKER [STOP_TIMEOUT_S]: registers a component, in start order.
# MARKER is text its command line contains, so a stale pidfile whose pid now
# belongs to another process is never taken for ours.
component() {
    COMPONENTS+=("$1")
    MARKER[$1]=$2
    STOP_TIMEOUT[$1]=${3:-15}
}

# render TEMPLATE OUT KEY=VALUE...: substitutes @KEY@ in TEMPLATE.
render() {
    local tpl=$1 out=$2 kv content
    shift 2
    content=$(<"$tpl")
    for kv in "$@"; do
        content=${content//@${kv%%=*}@/${kv#*=}}
    done
    printf '%s\n' "$content" >"$out.tmp"
    mv -f "$out.tmp" "$out"
}

# A signature of what a component was started with; a mismatch forces a restart.
signature() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }

# Stops what we started, in reverse start order; a process not ours is left alone.
stop_components() {
    local i name
    for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
        name=${COMPONENTS[i]}
        da_kill "$name" "$PIDS/$name.pid" "${MARKER[$name]}" "${STOP_TIMEOUT[$name]}"
    done
}

# reuse NAME SIG HEALTHCMD...: true (and logs) if the running instance from our
# pidfile has the same signature and passes its health check.
reuse() {
    local name=$1 sig=$2 marker=${MARKER[$1]} pid
    shift 2
    pid=$(da_pid_of "$PIDS/$name.pid" "$marker") || return 1
    [[ -f $PIDS/$name.sig && $(<"$PIDS/$name.sig") == "$sig" ]] || {
        da_log "$name: configuration changed; restarting"
        da_kill "$name" "$PIDS/$name.pid" "$marker" 30
        return 1
    }
    "$@" >/dev/null 2>&1 || {
        da_log "$name: running but unhealthy; restarting"
        da_kill "$name" "$PIDS/$name.pid" "$marker" 30
        return 1
    }
    da_log "$name: reusing healthy instance (pid $pid)"
}

http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@" || true; }

random_hex() { openssl rand -hex "$1"; }

# Live lease holders other than $1.
other_leases() {
    local f pid
    for f in "$STATE"/leases/*; do
        [[ -e $f ]] || continue
        pid=${f##*/}
        [[ $pid == "${1:-}" ]] && continue
        if [[ $pid == manual ]] || da_alive "$pid"; then echo "$pid"; else rm -f "$f"; fi
    done
}

lock() {
    mkdir -p "$STATE" "$PIDS" "$STATE/leases"
    exec 9>"$STATE/.lock"
    flock -w 300 9 || da_die "another scripts/services.sh held $STATE/.lock for 300s"
}
