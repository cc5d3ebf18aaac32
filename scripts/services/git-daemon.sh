# shellcheck shell=bash
# git daemon on 127.0.0.1 serving (and accepting pushes to) the repos under
# $STATE/git. Sourced by scripts/services.sh, which sets STATE, PIDS and
# GIT_DAEMON_PORT.

component git-daemon "--base-path=$STATE/git"

start_git_daemon() {
    local base=$STATE/git
    mkdir -p "$base"
    # git-daemon itself, not the `git` wrapper, so the pidfile names the listener.
    local args=("$(git --exec-path)/git-daemon" --reuseaddr --listen=127.0.0.1 "--port=$GIT_DAEMON_PORT"
        "--base-path=$base" --export-all --enable=receive-pack --informative-errors
        # The default cap (32) makes git-daemon kill clients and sleep 1 s when
        # 32+ racing jobs connect at once, all from 127.0.0.1.
        --max-connections=0 "$base")
    local sig
    sig=$(printf '%s\n' "${args[@]}" | signature /dev/stdin)
    reuse git-daemon "$sig" da_port_open "$GIT_DAEMON_PORT" && return 0
    da_require_free_port git-daemon "$GIT_DAEMON_PORT" DA_GIT_DAEMON_PORT
    local pid
    pid=$(da_spawn "$PIDS/git-daemon.pid" "$STATE/git-daemon.log" "${args[@]}")
    echo "$sig" >"$PIDS/git-daemon.sig"
    da_wait git-daemon 20 "$STATE/git-daemon.log" "$pid" da_port_open "$GIT_DAEMON_PORT"
    da_log "git-daemon: ready on git://127.0.0.1:$GIT_DAEMON_PORT (pid $pid)"
}
