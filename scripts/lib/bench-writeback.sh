# shellcheck shell=bash
# `scripts/bench.sh writeback`: sourced by scripts/bench.sh, which documents it and defines WORK,
# BIN, OVERLAY, FILE, start_daemon, cleanup and median.

# A bare repo whose tip holds MiB files of 1 MiB of random bytes under backend/ beside the
# overlay, and a depth-1 checkout of it made before any sibling landed (copied per run, so
# every run starts from the same checkout).
wb_seed() { # MiB
    local mib=$1 seed=$WORK/seed-wb$1 i
    git init -q -b main "$seed"
    mkdir -p "$seed/$OVERLAY" "$seed/backend"
    printf 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../../base\nimages:\n' >"$seed/$FILE"
    for name in auth-service billing-service; do
        printf '  - name: %s\n    newName: registry.local/nova/%s\n    newTag: seed\n' "$name" "$name" >>"$seed/$FILE"
    done
    for ((i = 0; i < mib; i++)); do head -c 1048576 /dev/urandom >"$seed/backend/blob-$i.bin"; done
    git -C "$seed" add -A
    git -C "$seed" -c user.name=seed -c user.email=seed@example.com commit -qm "monorepo of $mib MiB"
    git clone -q --bare "$seed" "$WORK/git/wb$mib.git"
    rm -rf "$seed"
    git clone -q --depth 1 "$URL_BASE/wb$mib.git" "$WORK/checkout-wb$mib"
}

# A sibling job's commit on the remote's main (the billing-service tag), written with plumbing
# so no second copy of the tree is checked out.
wb_sibling() { # MiB tag
    local bare=$WORK/git/wb$1.git index=$WORK/sibling.index blob tree commit
    GIT_INDEX_FILE=$index git -C "$bare" read-tree main
    blob=$(git -C "$bare" show "main:$FILE" | sed "/^  - name: billing-service\$/,/newTag:/ s/newTag: .*/newTag: $2/" | git -C "$bare" hash-object -w --stdin)
    GIT_INDEX_FILE=$index git -C "$bare" update-index --cacheinfo "100644,$blob,$FILE"
    tree=$(GIT_INDEX_FILE=$index git -C "$bare" write-tree)
    commit=$(git -C "$bare" -c user.name=sibling -c user.email=sibling@example.com commit-tree "$tree" -p main -m "update billing-service to $2")
    git -C "$bare" update-ref refs/heads/main "$commit"
    rm -f "$index"
}

wb_fresh_checkout() { # MiB -> prints the copy's path
    local ws=$WORK/ws-wb$1
    rm -rf "$ws"
    cp -a "$WORK/checkout-wb$1" "$ws"
    # The copy has new inodes: refresh the index's stat data now, or the shell loop's reset
    # would re-hash the whole tree and be timed for our copy, not for its work.
    git -C "$ws" update-index -q --refresh >/dev/null || true
    echo "$ws"
}

# Each prints "<seconds> <bytes fetched>" and fails if the tag did not land.
wb_ours() { # MiB tag
    local ws out=$WORK/out/wb-ours t0 bytes
    ws=$(wb_fresh_checkout "$1")
    t0=$(da_now_ms)
    env -i PATH="$PATH" HOME="$WORK" GITHUB_ACTIONS=true GITHUB_WORKSPACE="$ws" \
        GITHUB_REF=refs/heads/main GITHUB_SHA="$(git -C "$ws" rev-parse HEAD)" \
        GITHUB_OUTPUT="$out.output" GITHUB_STEP_SUMMARY="$out.summary" \
        INPUT_SERVICE=auth-service INPUT_TAG="$2" INPUT_BUILD=false INPUT_REGISTRY=registry.local \
        INPUT_REPOSITORY=nova/auth-service INPUT_IMAGE-NAME=auth-service \
        "$BIN" >"$out.log" 2>&1 || {
        cat "$out.log" >&2
        da_die "ours failed at $1 MiB"
    }
    printf '%s ' "$(da_secs "$t0" "$(da_now_ms)")"
    bytes=$(sed -n 's/^write-back: .* fetched (\([0-9]*\) bytes).*/\1/p' "$out.log")
    echo "${bytes:-?}"
}

# The bytes of the packs in WS that are not in the list taken before the fetch.
wb_new_pack_bytes() { # ws
    local pack bytes=0
    for pack in "$1"/.git/objects/pack/*.pack; do
        grep -qxF ".git/objects/pack/${pack##*/}" "$WORK/out/wb-shell.packs" || bytes=$((bytes + $(stat -c %s "$pack")))
    done
    echo "$bytes"
}

wb_shell() { # MiB tag
    local ws t0
    ws=$(wb_fresh_checkout "$1")
    t0=$(da_now_ms)
    (
        cd "$ws"
        printf '%s\n' .git/objects/pack/*.pack >"$WORK/out/wb-shell.packs"
        # unpackLimit=1 keeps what the fetch received as one pack, so its size is the bytes.
        git -c fetch.unpackLimit=1 fetch -q origin main
        git reset -q --hard origin/main
        sed -i "/^  - name: auth-service\$/,/newTag:/ s/newTag: .*/newTag: $2/" "$FILE"
        git -c user.name=job -c user.email=job@example.com commit -qam "update auth-service to $2"
        git push -q origin HEAD:main
    ) || da_die "the shell loop failed at $1 MiB"
    printf '%s %s\n' "$(da_secs "$t0" "$(da_now_ms)")" \
        "$(wb_new_pack_bytes "$ws")"
}

bench_writeback() {
    local sizes=("$@")
    ((${#sizes[@]})) || sizes=(10 200 1024)
    for mib in "${sizes[@]}"; do
        if ! [[ $mib =~ ^[0-9]+$ ]] || ((mib < 1 || mib > 4096)); then da_die "MiB must be 1..4096, got $mib"; fi
    done
    local rounds=${DA_BENCH_ROUNDS:-3}
    [[ $rounds =~ ^[1-9][0-9]*$ ]] || da_die "DA_BENCH_ROUNDS must be a positive number, got $rounds"
    bench_bin
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/da-bench.XXXXXX")
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    mkdir -p "$WORK/out"
    start_daemon

    da_log "writeback: tip of ${sizes[*]} MiB under backend/, depth-1 checkouts, $rounds round(s)"
    printf '%-6s %5s %7s %12s\n' method MiB secs fetched
    local r m secs bytes tag
    declare -A SECS BYTES
    for mib in "${sizes[@]}"; do
        da_log "seeding $mib MiB"
        wb_seed "$mib"
        for ((r = 1; r <= rounds; r++)); do
            for m in ours shell; do
                tag=$m-$r
                wb_sibling "$mib" "sibling-$tag"
                read -r secs bytes < <("wb_$m" "$mib" "$tag")
                git -C "$WORK/git/wb$mib.git" show "main:$FILE" | grep -qx "    newTag: $tag" ||
                    da_die "$m at $mib MiB: the tag did not land"
                printf '%-6s %5s %7s %12s\n' "$m" "$mib" "$secs" "$bytes"
                SECS[$mib/$m]+="$secs "
                BYTES[$mib/$m]+="$bytes "
            done
        done
        rm -rf "$WORK/ws-wb$mib" "$WORK/checkout-wb$mib" "$WORK/git/wb$mib.git"
    done
    echo
    local ours shell
    for mib in "${sizes[@]}"; do
        ours=$(median <<<"${SECS[$mib/ours]}")
        shell=$(median <<<"${SECS[$mib/shell]}")
        awk -v n="$mib" -v a="$ours" -v b="$shell" -v fa="$(median <<<"${BYTES[$mib/ours]}")" -v fb="$(median <<<"${BYTES[$mib/shell]}")" \
            'BEGIN { printf "%5s MiB: ours %.2f s (fetched %d B), shell %.2f s (fetched %d B), ours/shell %.2f, ours-shell %+.2f s\n", n, a, fa, b, fb, a / b, a - b }'
    done
}
