# shellcheck shell=bash
# `scripts/bench.sh build` case `chef`: a cargo-chef-shaped build (tests/fixtures/chef: planner,
# builder with an expensive "cook" step, slim runtime) built cold, then rebuilt on a fresh
# runner (this repository's images, dangling images and the build cache removed) after a
# one-line source change, by four methods, interleaved, DA_BENCH_ROUNDS times (default 3):
#
#   ours-buildkit   deploy-action, builder: buildkit (cache-to/cache-from auto: stage images)
#   ours-classic    deploy-action, builder: classic (the same stage images, pulled first)
#   cli-classic     docker build (classic), --cache-from the final image, pulled first
#   cli-buildkit    docker build with BuildKit (Debian's CLI 20.10), inline cache of the
#                   final image, --cache-from it
#
# Each prints the median cold and rebuild seconds and rebuild/cold. Sourced by bench-build.sh.
# Env: DA_BENCH_CHEF_WORK (cook rounds of hashing 16 MiB, default 60), DA_BENCH_CHEF_METHODS.

CHEF_CLI_BK=/usr/bin/docker

# A fresh runner for REPO: its images, the dangling ones and the whole build cache gone.
chef_fresh() {
    local repo=$1 ids=()
    mapfile -t ids < <(docker image ls -q --filter "reference=$repo" | sort -u)
    ((${#ids[@]} == 0)) || docker image rm -f "${ids[@]}" >/dev/null 2>&1 || true
    docker image prune -f >/dev/null 2>&1 || true
    DOCKER_BUILDKIT=1 "$CHEF_CLI_BK" builder prune -af >/dev/null 2>&1 || da_die "builder prune failed"
}

# chef_one METHOD WS REPO TAG OUT: one build and push by METHOD, seconds to OUT.time.
chef_one() {
    local method=$1 ws=$2 repo=$3 tag=$4 out=$5 t0 prev args
    local dir=$ws/backend/auth-service image=$DA_REGISTRY/$repo:$tag
    args=(--build-arg "BASE=$DA_BASE_IMAGE" --build-arg "WORK=$CHEF_WORK" --build-arg "NONCE=$CHEF_NONCE")
    t0=$(da_now_ms)
    case $method in
    ours-buildkit | ours-classic)
        BB_REPO=$repo bb_run "$out" "$ws" "$tag" BUILDER="${method#ours-}" \
            CONTEXT=backend/auth-service DOCKERFILE=backend/auth-service/Dockerfile SKIP-EXISTING=false \
            "BUILD-ARGS=BASE=$DA_BASE_IMAGE"$'\n'"WORK=$CHEF_WORK"$'\n'"NONCE=$CHEF_NONCE"
        return
        ;;
    cli-classic)
        prev=$(<"$ws/prev")
        {
            [[ -z $prev ]] || docker pull -q "$prev" || true
            DOCKER_BUILDKIT=0 docker build -q ${prev:+--cache-from "$prev"} "${args[@]}" -t "$image" "$dir" &&
                docker push -q "$image"
        } >"$out.log" 2>&1 || da_die "$method failed; see $out.log"
        ;;
    cli-buildkit)
        prev=$(<"$ws/prev")
        {
            DOCKER_BUILDKIT=1 "$CHEF_CLI_BK" build -q --network=none ${prev:+--cache-from "$prev"} \
                --build-arg BUILDKIT_INLINE_CACHE=1 "${args[@]}" -t "$image" "$dir" &&
                docker push -q "$image"
        } >"$out.log" 2>&1 || da_die "$method failed; see $out.log"
        ;;
    esac
    da_secs "$t0" "$(da_now_ms)" >"$out.time"
}

# The median of the numbers on stdin.
chef_median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

bb_case_chef() {
    local rounds=${DA_BENCH_ROUNDS:-3} o=$BB_OUT/chef r m ws repo
    local methods=${DA_BENCH_CHEF_METHODS:-ours-buildkit ours-classic cli-classic cli-buildkit}
    CHEF_WORK=${DA_BENCH_CHEF_WORK:-60}
    mkdir -p "$o"
    export DOCKER_CONFIG=$BB_WORK/docker-config
    docker login -u "$DA_REGISTRY_USER" --password-stdin "$DA_REGISTRY" <<<"$DA_REGISTRY_PASSWORD" >/dev/null 2>&1 ||
        da_die "docker login to $DA_REGISTRY failed"
    for ((r = 1; r <= rounds; r++)); do
        for m in $methods; do
            # A cook no earlier round or method has cached, so "cold" is cold.
            CHEF_NONCE=$m-$r-$$-$RANDOM
            ws=$BB_WORK/chef-$m-$r
            repo=da-bench/chef-$m-$r-$$
            mkdir -p "$ws/backend"
            cp -r "$ROOT/tests/fixtures/chef" "$ws/backend/auth-service"
            : >"$ws/prev"
            chef_fresh "$DA_REGISTRY/$repo"
            da_log "chef round $r/$rounds, $m: cold"
            chef_one "$m" "$ws" "$repo" c1 "$o/$m-$r-cold"
            echo "$DA_REGISTRY/$repo:c1" >"$ws/prev"
            echo "the service, changed in round $r" >"$ws/backend/auth-service/src/main.txt"
            chef_fresh "$DA_REGISTRY/$repo"
            da_log "chef round $r/$rounds, $m: fresh runner, one file changed"
            chef_one "$m" "$ws" "$repo" w1 "$o/$m-$r-warm"
            chef_fresh "$DA_REGISTRY/$repo"
            rm -rf "$ws"
        done
    done
    docker logout "$DA_REGISTRY" >/dev/null 2>&1 || true
    unset DOCKER_CONFIG
    local cold warm
    for m in $methods; do
        cold=$(awk 1 "$o/$m"-*-cold.time | chef_median)
        warm=$(awk 1 "$o/$m"-*-warm.time | chef_median)
        bb_row "chef $m: cold (median of $rounds)" "$cold"
        bb_row "chef $m: fresh runner, one file changed" "$warm" "rebuild/cold $(bb_ratio "$warm" "$cold")"
    done
}
