# shellcheck shell=bash
# Helpers shared by the scripts (services, test, bench, demo, image): logging,
# timing, bounded polling, and pidfile-tracked background processes.

da_log() { printf '[%s %(%H:%M:%S)T] %s\n' "${DA_LOG_TAG:-services}" -1 "$*" >&2; }
da_die() {
    printf '[%s] ERROR: %s\n' "${DA_LOG_TAG:-services}" "$*" >&2
    exit 1
}

# Milliseconds since the epoch.
da_now_ms() { echo $(($(date +%s%N) / 1000000)); }
# Seconds since START_MS, one decimal.
da_since() {
    local ms=$(($(da_now_ms) - $1))
    printf '%d.%01ds' $((ms / 1000)) $(((ms % 1000) / 100))
}
# Seconds from START_MS to END_MS, rounded to two decimals, no unit: for tables.
da_secs() {
    local cs=$((($2 - $1 + 5) / 10))
    printf '%d.%02d' $((cs / 100)) $((cs % 100))
}

# Single-quotes a value for a sourceable env file.
da_quote() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

# da_tail LOG: the last lines of a log, indented, for error messages.
da_tail() {
    [[ -f $1 ]] || return 0
    echo "--- last lines of $1 ---" >&2
    tail -n 25 "$1" | sed 's/^/    /' >&2
}

# da_wait NAME TIMEOUT_S LOG PID CMD...: polls CMD (every 0.2 s) until it succeeds.
# Fails naming NAME and LOG after TIMEOUT_S, or at once if PID (when non-empty) has exited.
da_wait() {
    local name=$1 timeout=$2 log=$3 pid=$4
    shift 4
    local deadline=$(($(da_now_ms) + timeout * 1000))
    while true; do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        if [[ -n $pid ]] && ! da_alive "$pid"; then
            da_tail "$log"
            da_die "$name exited during startup; see $log"
        fi
        if (($(da_now_ms) >= deadline)); then
            da_tail "$log"
            da_die "$name was not ready after ${timeout}s; see $log"
        fi
        sleep 0.2
    done
}

# True if something accepts TCP connections on 127.0.0.1:PORT.
da_port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Fails clearly if PORT is taken, naming the component that wanted it.
da_require_free_port() {
    local name=$1 port=$2 var=$3 who=""
    da_port_open "$port" || return 0
    if command -v ss >/dev/null; then
        who=$(ss -Hltnp "sport = :$port" 2>/dev/null | sed 's/.*users://' | head -n 1)
    fi
    da_die "$name: port 127.0.0.1:$port is already in use${who:+ by $who}; stop that or set $var to a free port"
}

# The pid in PIDFILE if that process is alive and its command line contains MARKER.
da_pid_of() {
    local pidfile=$1 marker=$2 pid
    [[ -f $pidfile ]] || return 1
    pid=$(<"$pidfile")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ -r /proc/$pid/cmdline ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$marker" || return 1
    echo "$pid"
}

# da_spawn PIDFILE LOG CMD...: starts CMD detached (own session, stdin from
# /dev/null, output to LOG, inherited fds >2 closed) and echoes its pid.
da_spawn() {
    local pidfile=$1 log=$2
    shift 2
    rm -f "$pidfile"
    [[ -f $log ]] && mv -f "$log" "$log.prev"
    # bash -c writes its own pid, then exec keeps that pid for CMD.
    # shellcheck disable=SC2016
    setsid bash -c 'echo $$ >"$0.tmp" && mv "$0.tmp" "$0" && exec "$@"' "$pidfile" "$@" \
        </dev/null >"$log" 2>&1 9>&- &
    local i
    for ((i = 0; i < 100; i++)); do
        [[ -s $pidfile ]] && {
            cat "$pidfile"
            return 0
        }
        sleep 0.05
    done
    da_die "could not start $1 (no pidfile $pidfile); see $log"
}

# True if PID runs (a zombie counts as gone).
da_alive() {
    kill -0 "$1" 2>/dev/null || return 1
    local state
    state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null)
    [[ $state != Z ]]
}

# da_kill NAME PIDFILE MARKER [TIMEOUT_S]: SIGTERM, bounded wait, then SIGKILL.
da_kill() {
    local name=$1 pidfile=$2 marker=$3 timeout=${4:-15} pid
    if pid=$(da_pid_of "$pidfile" "$marker"); then
        kill -TERM "$pid" 2>/dev/null || true
        local deadline=$(($(da_now_ms) + timeout * 1000))
        while da_alive "$pid"; do
            if (($(da_now_ms) >= deadline)); then
                da_log "$name (pid $pid) ignored SIGTERM for ${timeout}s; sending SIGKILL"
                kill -KILL "$pid" 2>/dev/null || true
                break
            fi
            sleep 0.1
        done
        da_log "stopped $name (pid $pid)"
    fi
    rm -f "$pidfile"
}
