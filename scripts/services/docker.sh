# shellcheck shell=bash
# dockerd (vfs storage, no iptables or bridge) on a socket in the state dir,
# unless a healthy daemon can be reused, and the da-busybox base image.
# Sourced by scripts/services.sh, which sets STATE, PIDS, DOCKER_DATA_ROOT and
# BASE_IMAGE; start_docker sets DOCKER_HOST_VALUE.

DOCKER_SOCK=$STATE/docker.sock
DOCKER_HOST_VALUE=
component dockerd "$DOCKER_SOCK" 60

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
    if reuse dockerd "$sig" docker_ok "unix://$DOCKER_SOCK"; then
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
        # 2>/dev/null first: a process gone since the glob must not print an error.
        cmdline=$(tr '\0' ' ' 2>/dev/null <"$other") || continue
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
        cd "$rootfs" || exit 1
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
