#!/usr/bin/env bash
# Builds the action image on this machine, where no base image can be pulled:
#   1. the host release binary (cargo build --release; zlib static, as in the Dockerfile);
#   2. a runtime base standing in for gcr.io/distroless/cc-debian12: Debian bookworm from the
#      apt mirror this machine uses (debootstrap --variant=minbase), trimmed to what distroless
#      cc gives a Rust binary (glibc, libgcc, libssl3, CA certificates, netbase), `docker import`ed
#      and cached (the trimmed rootfs under $DA_IMAGE_CACHE, the image in Docker);
#   3. `docker build --target runtime-local` of the repo's Dockerfile with that base and a
#      context holding only the binary; then a smoke run and the image's size.
#
#   scripts/image.sh [--binary PATH] [--tag TAG]   all three steps (TAG: ghcr.io/nova/deploy-action:v1)
#   scripts/image.sh binary                        step 1 only; prints the binary's path
#   scripts/image.sh base                          step 2 only; prints the base image's name
#
# --binary uses a binary built elsewhere (a debug build is stripped on the way in).
# Env: DOCKER_HOST (else .da-services/env's, else Docker's default), DA_IMAGE_CACHE
# (/var/cache/deploy-action), DA_DEBIAN_MIRROR (default: the machine's apt source for bookworm).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib/common.sh
source "$ROOT/scripts/lib/common.sh"
DA_LOG_TAG=image.sh

TAG=ghcr.io/nova/deploy-action:v1
SUITE=bookworm # = the runtime's Debian release (cc-debian12), so the glibc matches
# What gcr.io/distroless/cc-debian12 holds that a Rust binary can use (it also has tzdata,
# libstdc++6 and libgomp1, which this binary does not link). No zlib1g: distroless has none.
BASE_PACKAGES=(libc6 libgcc-s1 libssl3 ca-certificates netbase)
# Bump when the trimming below changes, to rebuild cached bases.
BASE_RECIPE=3
CACHE=${DA_IMAGE_CACHE:-/var/cache/deploy-action}

if [[ -z ${DOCKER_HOST:-} && -s $ROOT/.da-services/env ]]; then
    # shellcheck source=/dev/null
    source "$ROOT/.da-services/env"
fi

# ---------------------------------------------------------------- 1. binary

# Builds the release binary and echoes its path. LIBZ_SYS_STATIC matches the Dockerfile's
# builder: the runtime has no libz.so.1.
build_binary() {
    local t0 target
    t0=$(da_now_ms)
    da_log "cargo build --release --bin deploy-action"
    (cd "$ROOT" && LIBZ_SYS_STATIC=1 cargo build --release --bin deploy-action >&2)
    target=${CARGO_TARGET_DIR:-$ROOT/target}
    [[ $target == /* ]] || target=$ROOT/$target
    da_log "binary built in $(da_since "$t0")"
    echo "$target/release/deploy-action"
}

# ---------------------------------------------------------------- 2. base

# The Debian mirror apt uses for the main archive (deb822 or one-line sources).
debian_mirror() {
    if [[ -n ${DA_DEBIAN_MIRROR:-} ]]; then
        echo "$DA_DEBIAN_MIRROR"
        return
    fi
    local f uri
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -e $f ]] || continue
        uri=$(awk '/^URIs:/ {u=$2} /^Suites:/ && / '"$SUITE"'( |$)/ && u !~ /security/ {print u; exit}' "$f")
        [[ -n $uri ]] && {
            echo "$uri"
            return
        }
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -e $f ]] || continue
        uri=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^(https?|file):/) { print $i; exit } }' "$f")
        [[ -n $uri ]] && {
            echo "$uri"
            return
        }
    done
    echo http://deb.debian.org/debian
}

base_name() {
    local key
    key=$(printf '%s\n' "$SUITE" "${BASE_PACKAGES[@]}" "$BASE_RECIPE" | sha256sum | cut -c1-12)
    echo "deploy-action-base:$SUITE-$key"
}

# Trims the debootstrapped FULL rootfs into SLIM: only the files of BASE_PACKAGES (without docs,
# locales and gconv), the CA bundle, and a skeleton like distroless's.
trim_rootfs() {
    local full=$1 slim=$2 list=$3 p path
    mkdir -p "$slim"/{etc/ssl/certs,root,tmp,usr/bin,usr/lib/x86_64-linux-gnu,usr/lib64,usr/sbin}
    chmod 1777 "$slim/tmp"
    chmod 700 "$slim/root"
    # bookworm is merged-/usr: dpkg lists /lib/... paths that live under /usr.
    ln -s usr/bin "$slim/bin"
    ln -s usr/lib "$slim/lib"
    ln -s usr/lib64 "$slim/lib64"
    ln -s usr/sbin "$slim/sbin"
    : >"$list"
    for p in "${BASE_PACKAGES[@]}"; do
        dpkg-query --admindir="$full/var/lib/dpkg" -L "$p" >>"$list" ||
            da_die "base: package $p is not in the debootstrapped rootfs"
    done
    grep -vE '^/usr/share/(doc|doc-base|lintian|locale|man|info|bug|ca-certificates)/|^/usr/lib/x86_64-linux-gnu/(gconv|audit)/|^/usr/sbin/update-ca-certificates$|^/etc/ca-certificates' "$list" |
        while IFS= read -r path; do
            # Files and symlinks only; the directories come from extracting them.
            if [[ -L $full$path ]] || [[ -e $full$path && ! -d $full$path ]]; then
                echo "${path#/}"
            fi
        done | sort -u >"$list.files"
    tar -C "$full" --no-recursion -cf - -T "$list.files" |
        tar -C "$slim" --keep-directory-symlink -xf -
    cp "$full/etc/ssl/certs/ca-certificates.crt" "$slim/etc/ssl/certs/"
    cp "$full/usr/lib/os-release" "$slim/usr/lib/os-release"
    ln -sf ../usr/lib/os-release "$slim/etc/os-release"
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$slim/etc/passwd"
    printf 'root:x:0:\nnonroot:x:65532:\n' >"$slim/etc/group"
    printf 'hosts: files dns\n' >"$slim/etc/nsswitch.conf"
}

# Makes (or reuses) the base image and echoes its name.
ensure_base() {
    local name
    name=$(base_name)
    if docker image inspect "$name" >/dev/null 2>&1; then
        da_log "base $name: present"
        echo "$name"
        return
    fi
    mkdir -p "$CACHE"
    exec 8>"$CACHE/.lock"
    flock -w 900 8 || da_die "base: another image.sh held $CACHE/.lock for 900s"
    local tarball=$CACHE/${name#deploy-action-base:}.tar t0
    t0=$(da_now_ms)
    if [[ ! -s $tarball ]]; then
        [[ $(id -u) == 0 ]] || da_die "base: debootstrap needs root"
        command -v debootstrap >/dev/null || da_die "base: debootstrap missing: scripts/services.sh install"
        local mirror work
        mirror=$(debian_mirror)
        work=$(mktemp -d /var/tmp/da-base.XXXXXX)
        # shellcheck disable=SC2064
        trap "rm -rf '$work'" EXIT
        da_log "base: debootstrap --variant=minbase $SUITE from $mirror (once; cached in $CACHE)"
        local includes
        includes=$(
            IFS=,
            echo "${BASE_PACKAGES[*]}"
        )
        debootstrap --variant=minbase --include="$includes" "$SUITE" "$work/full" "$mirror" \
            >"$work/debootstrap.log" 2>&1 || {
            da_tail "$work/debootstrap.log"
            da_die "base: debootstrap failed"
        }
        trim_rootfs "$work/full" "$work/slim" "$work/files"
        tar -C "$work/slim" --numeric-owner --owner=0 --group=0 -cf "$tarball.tmp" .
        mv -f "$tarball.tmp" "$tarball"
        rm -rf "$work"
        trap - EXIT
        da_log "base: rootfs made in $(da_since "$t0") ($(du -h "$tarball" | cut -f1))"
    fi
    # Like distroless: no shell, CA bundle named by SSL_CERT_FILE.
    docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
        --message "Debian $SUITE trimmed to ${BASE_PACKAGES[*]} (stand-in for gcr.io/distroless/cc-debian12)" \
        "$tarball" "$name" >/dev/null
    exec 8>&-
    da_log "base $name: imported ($(size_mb "$name") MB)"
    echo "$name"
}

size_mb() { docker image inspect -f '{{.Size}}' "$1" | awk '{ printf "%.1f", $1 / 1000000 }'; }

# ---------------------------------------------------------------- 3. image

build_image() {
    local binary=$1 base ctx t0
    [[ -x $binary ]] || da_die "no executable binary at $binary"
    base=$(ensure_base)
    t0=$(da_now_ms)
    ctx=$(mktemp -d)
    # shellcheck disable=SC2064
    trap "rm -rf '$ctx'" EXIT
    if command -v strip >/dev/null; then
        strip -o "$ctx/deploy-action" "$binary"
    else
        cp "$binary" "$ctx/deploy-action"
    fi
    local revision
    revision=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
    # The classic builder stops at runtime-local, the Dockerfile's first stage.
    DOCKER_BUILDKIT=0 docker build -f "$ROOT/Dockerfile" --target runtime-local \
        --build-arg "RUNTIME_BASE=$base" \
        --label "org.opencontainers.image.revision=$revision" \
        -t "$TAG" "$ctx" >"$ctx/build.log" 2>&1 || {
        da_tail "$ctx/build.log"
        da_die "image: docker build --target runtime-local failed"
    }
    rm -rf "$ctx"
    trap - EXIT
    # Smoke: the loader finds every library in the base, and the entrypoint is the binary.
    local out
    out=$(docker run --rm "$TAG" --version 2>&1) || {
        echo "$out" >&2
        da_die "image: $TAG does not run; a library the binary links may be missing from the base (${BASE_PACKAGES[*]})"
    }
    da_log "image $TAG built in $(da_since "$t0"): ${out:-(no --version output)}"
    local bin_mb
    bin_mb=$(stat -c %s "$binary" | awk '{ printf "%.1f", $1 / 1000000 }')
    echo "image $TAG: $(size_mb "$TAG") MB (base $(size_mb "$base") MB; binary $bin_mb MB before strip)"
}

main() {
    local binary="" cmd=image
    while (($#)); do
        case $1 in
            --binary)
                binary=$2
                shift 2
                ;;
            --tag)
                TAG=$2
                shift 2
                ;;
            binary | base)
                cmd=$1
                shift
                ;;
            -h | --help)
                sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
                return 0
                ;;
            *) da_die "unknown argument: $1 (see --help)" ;;
        esac
    done
    case $cmd in
        binary) build_binary ;;
        base) ensure_base ;;
        image)
            [[ -n $binary ]] || binary=$(build_binary)
            build_image "$binary"
            ;;
    esac
}

main "$@"
