# shellcheck shell=bash
# `scripts/bench.sh build`: the build half's numbers, printed as ratios in one invocation.
# Sourced by scripts/bench.sh (which sources lib/common.sh and sets ROOT, bench_bin and
# drop_scratch). Every case runs the real binary with INPUT_* env as a workflow would
# (set-image: false, so no git), against the dockerd and registry of scripts/services.sh:
#
#   cold   the fixture service (tests/fixtures/service, RUN step of WORK rounds) built from
#          scratch and pushed
#   warm   the image removed locally (a fresh runner), one source file changed, rebuilt with
#          cache-from = the pushed image (what `cache-from: auto` resolves to) and pushed
#   skip   a re-run of the warm tag with skip-existing: true
#   ctx    a generated 20k-file / 300 MB context with `COPY . /ctx`: ours vs `docker build`
#          (classic builder), each from a cold cache, best of DA_BENCH_ROUNDS; the COPY
#          layer's content hash must be the same for both
#   rss    peak RSS of our process sending a 1 GB context (/usr/bin/time -v), with BuildKit
#          (the context through the session) and with the classic builder (the tar)
#   chef   the cargo-chef-shaped fixture, cold and on a fresh runner, ours (BuildKit and
#          classic, stage cache images) beside the docker CLI (scripts/lib/bench-chef.sh)
#
# cache and ctx measure the classic path (BUILDER=classic) against the CLI's classic builder.
#
# Env: DA_BENCH_BIN, DA_BENCH_CASES (default "chef rss cache ctx"), DA_BENCH_WORK (RUN rounds of
#      hashing 16 MiB, default 40: 10-20 s cold), DA_BENCH_ROUNDS (ctx, default 2),
#      DA_BENCH_KEEP=1.
# Uses the running services if `scripts/services.sh status` says they are up; otherwise
# starts them with a lease and stops them on exit.

BB_WORK=
BB_LEASED=0

bb_cleanup() {
    drop_scratch "$BB_WORK"
    if ((BB_LEASED)); then
        DA_SERVICES_LEASE=$$ bash "$ROOT/scripts/services.sh" stop >/dev/null 2>&1 || true
    fi
}

bb_services() {
    if ! bash "$ROOT/scripts/services.sh" status >/dev/null 2>&1; then
        da_log "starting the services (scripts/services.sh start, lease $$)"
        DA_SERVICES_LEASE=$$ bash "$ROOT/scripts/services.sh" start >&2
        BB_LEASED=1
    fi
    # shellcheck source=/dev/null
    source "$ROOT/.da-services/env"
    docker info >/dev/null 2>&1 || da_die "dockerd at $DOCKER_HOST does not answer"
}

# bb_run OUT WS TAG [NAME=VALUE...]: one run of the action; extra inputs as NAME=VALUE.
# Writes OUT.log and OUT.output, and the wall seconds to OUT.time. Fails on a failed run.
bb_run() {
    local out=$1 ws=$2 tag=$3 kv t0 rc=0
    shift 3
    local inputs=() timer=()
    for kv in "$@"; do inputs+=("INPUT_${kv%%=*}=${kv#*=}"); done
    [[ -z ${BB_TIME:-} ]] || timer=(/usr/bin/time -v -o "$out.rusage")
    t0=$(da_now_ms)
    env -i PATH="$PATH" HOME="$BB_WORK" DOCKER_HOST="$DOCKER_HOST" GITHUB_ACTIONS=true \
        GITHUB_WORKSPACE="$ws" GITHUB_SHA=0123456789abcdef0123456789abcdef01234567 \
        GITHUB_REF=refs/heads/main GITHUB_OUTPUT="$out.output" GITHUB_STEP_SUMMARY="$out.summary" \
        INPUT_SERVICE=auth-service INPUT_TAG="$tag" INPUT_REGISTRY="$DA_REGISTRY" \
        "INPUT_REGISTRY-USERNAME=$DA_REGISTRY_USER" "INPUT_REGISTRY-PASSWORD=$DA_REGISTRY_PASSWORD" \
        INPUT_REPOSITORY="$BB_REPO" "INPUT_SET-IMAGE=false" "${inputs[@]}" \
        "${timer[@]}" "$BIN" >"$out.log" 2>&1 || rc=$?
    printf '%s\n' "$(da_secs "$t0" "$(da_now_ms)")" >"$out.time"
    ((rc == 0)) || {
        da_tail "$out.log"
        da_die "run $out failed (exit $rc); see $out.log"
    }
}

bb_output() { sed -n "s/^$2=//p" "$1.output" | tail -n 1; }

bb_ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }

# The image id of NAME, then removed with its intermediate images (a fresh daemon state).
bb_rmi() { docker image rm -f "$1" >/dev/null 2>&1 || true; }

# bb_context DIR FILES BYTES_EACH: a context of FILES files in 100-file directories.
bb_context() {
    python3 - "$1" "$2" "$3" <<'PY'
import os, sys
root, files, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(root, exist_ok=True)
block = os.urandom(1 << 20)
for i in range(files):
    d = os.path.join(root, "src", f"d{i // 100:04d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i % 100:03d}.bin"), "wb") as f:
        # Distinct content per file: a counter, then a slice of the random block.
        head = f"{i}\n".encode()
        left, off = size - len(head), (i * 7919) % (1 << 20)
        f.write(head)
        while left > 0:
            chunk = block[off:off + left]
            f.write(chunk)
            left -= len(chunk)
            off = 0
PY
}

# The content hash the classic builder gave the COPY step of IMAGE ("COPY dir:<hash> in /ctx").
bb_copy_hash() { docker history --no-trunc --format '{{.CreatedBy}}' "$1" | sed -n 's/.*COPY dir:\([0-9a-f]*\) in .*/\1/p' | head -n 1; }

bench_build() {
    command -v docker >/dev/null || da_die "the docker CLI is needed"
    [[ -x /usr/bin/time ]] || da_die "/usr/bin/time is needed (apt-get install time)"
    bench_bin
    BB_WORK=$(mktemp -d "${TMPDIR:-/tmp}/da-bench-build.XXXXXX")
    trap bb_cleanup EXIT
    trap 'exit 130' INT TERM
    bb_services

    local cases=${DA_BENCH_CASES:-chef rss cache ctx} c
    BB_REPO=da-bench/build-$$-$RANDOM
    BB_OUT=$BB_WORK/out
    BB_ROWS=()
    mkdir -p "$BB_OUT"
    da_log "build: dockerd $(docker version --format '{{.Server.Version}}'), registry $DA_REGISTRY, cases: $cases"
    for c in $cases; do
        case $c in
        chef | cache | ctx | rss) "bb_case_$c" ;;
        *) da_die "unknown case $c (chef, cache, ctx, rss)" ;;
        esac
    done
    printf '\n%-52s %9s  %s\n' case seconds ratio
    printf '%s\n' "${BB_ROWS[@]}"
}

# shellcheck source=scripts/lib/bench-chef.sh
source "$ROOT/scripts/lib/bench-chef.sh"

# bb_row LABEL VALUE [NOTE]: one line of the closing table.
bb_row() { BB_ROWS+=("$(printf '%-52s %9s  %s' "$1" "$2" "${3:-}")"); }

# cold, warm (ours and the CLI), skip.
bb_case_cache() {
    local work=${DA_BENCH_WORK:-40} ws=$BB_WORK/ws greeting o=$BB_OUT
    greeting=bench-$$-$RANDOM
    mkdir -p "$ws/backend"
    cp -r "$ROOT/tests/fixtures/service" "$ws/backend/auth-service"
    local fixture=(CONTEXT=backend/auth-service DOCKERFILE=backend/auth-service/Dockerfile
        "BUILD-ARGS=BASE=$DA_BASE_IMAGE"$'\n'"GREETING=$greeting"$'\n'"WORK=$work")
    da_log "cold: build and push from scratch"
    bb_run "$o/cold" "$ws" c1 "${fixture[@]}" CACHE-FROM=none SKIP-EXISTING=false BUILDER=classic
    [[ $(bb_output "$o/cold" built) == true ]] || da_die "cold run did not build"
    bb_rmi "$DA_REGISTRY/$BB_REPO:c1"
    echo "changed for the warm run $RANDOM" >"$ws/backend/auth-service/src/main.txt"
    da_log "warm: image removed locally, one source file changed, cache-from the pushed image"
    bb_run "$o/warm" "$ws" w1 "${fixture[@]}" "CACHE-FROM=$DA_REGISTRY/$BB_REPO:c1" SKIP-EXISTING=false BUILDER=classic
    grep -q -- '---> Using cache' "$o/warm.log" || da_die "warm run used no cache; see $o/warm.log"
    da_log "skip: the warm tag again, skip-existing: true"
    bb_run "$o/skip" "$ws" w1 "${fixture[@]}" "CACHE-FROM=$DA_REGISTRY/$BB_REPO:c1" SKIP-EXISTING=true BUILDER=classic
    [[ $(bb_output "$o/skip" built) == false ]] || da_die "the re-run built"
    [[ $(bb_output "$o/skip" digest) == "$(bb_output "$o/warm" digest)" ]] || da_die "the re-run reported another digest"
    bb_rmi "$DA_REGISTRY/$BB_REPO:w1"
    bb_rmi "$DA_REGISTRY/$BB_REPO:c1"

    # The docker CLI doing the warm case the same way (pull, build --cache-from, push), as the
    # reference for what the daemon's own steps cost here.
    da_log "warm, docker CLI: pull, build --cache-from, push"
    export DOCKER_CONFIG=$BB_WORK/docker-config
    docker login -u "$DA_REGISTRY_USER" --password-stdin "$DA_REGISTRY" <<<"$DA_REGISTRY_PASSWORD" >/dev/null 2>&1 ||
        da_die "docker login to $DA_REGISTRY failed"
    echo "changed for the CLI warm run $RANDOM" >"$ws/backend/auth-service/src/main.txt"
    local t0 cli_warm
    t0=$(da_now_ms)
    {
        docker pull -q "$DA_REGISTRY/$BB_REPO:c1" &&
            DOCKER_BUILDKIT=0 docker build -q --cache-from "$DA_REGISTRY/$BB_REPO:c1" \
                --build-arg "BASE=$DA_BASE_IMAGE" --build-arg "GREETING=$greeting" --build-arg "WORK=$work" \
                --label "org.opencontainers.image.revision=0123456789abcdef0123456789abcdef01234567" \
                --label "org.opencontainers.image.created=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
                -f "$ws/backend/auth-service/Dockerfile" -t "$DA_REGISTRY/$BB_REPO:cli1" "$ws/backend/auth-service" &&
            docker push -q "$DA_REGISTRY/$BB_REPO:cli1"
    } >"$o/cli-warm.log" 2>&1 || da_die "the CLI warm run failed; see $o/cli-warm.log"
    cli_warm=$(da_secs "$t0" "$(da_now_ms)")
    docker logout "$DA_REGISTRY" >/dev/null 2>&1 || true
    unset DOCKER_CONFIG
    bb_rmi "$DA_REGISTRY/$BB_REPO:cli1"
    bb_rmi "$DA_REGISTRY/$BB_REPO:c1"

    local cold warm skip
    cold=$(<"$o/cold.time") warm=$(<"$o/warm.time") skip=$(<"$o/skip.time")
    bb_row "cold build + push (fixture, WORK=$work)" "$cold"
    bb_row "warm rebuild + push (cache-from, image removed)" "$warm" "warm/cold $(bb_ratio "$warm" "$cold") (target <= 0.30)"
    bb_row "warm, docker CLI (pull, build --cache-from, push)" "$cli_warm" "ours/cli $(bb_ratio "$warm" "$cli_warm")"
    bb_row "re-run of an existing tag (skip-existing)" "$skip" "skip/cold $(bb_ratio "$skip" "$cold")"
}

# A 20k-file / 300 MB context with `COPY . /ctx`: ours vs the docker CLI.
bb_case_ctx() {
    local rounds=${DA_BENCH_ROUNDS:-2} o=$BB_OUT
    local ctx=$BB_WORK/ctx i best_cli='' best_ours='' t hash_cli hash_ours
    da_log "ctx: generating 20000 files x 15 KB"
    bb_context "$ctx" 20000 15000
    printf 'FROM %s\nCOPY . /ctx\n' "$DA_BASE_IMAGE" >"$ctx/Dockerfile"
    for ((i = 1; i <= rounds; i++)); do
        da_log "ctx round $i/$rounds: docker build (classic builder)"
        # The same two LABEL steps ours gets (revision, created), so both do the same work.
        /usr/bin/time -f %e -o "$o/cli.time" env DOCKER_BUILDKIT=0 docker build -q -t "da-bench-cli-$$:1" \
            --label "org.opencontainers.image.revision=0123456789abcdef0123456789abcdef01234567" \
            --label "org.opencontainers.image.created=$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$ctx" \
            >/dev/null 2>"$o/cli.err" || da_die "docker build failed: $(tail -n 5 "$o/cli.err")"
        t=$(tail -n 1 "$o/cli.time")
        hash_cli=$(bb_copy_hash "da-bench-cli-$$:1")
        bb_rmi "da-bench-cli-$$:1"
        [[ -z $best_cli ]] || awk -v a="$t" -v b="$best_cli" 'BEGIN { exit !(a < b) }' && best_cli=$t
        da_log "ctx round $i/$rounds: ours"
        bb_run "$o/ctx$i" "$ctx" "ctx$i" PUSH=false SKIP-EXISTING=false CACHE-FROM=none BUILDER=classic
        t=$(<"$o/ctx$i.time")
        hash_ours=$(bb_copy_hash "$DA_REGISTRY/$BB_REPO:ctx$i")
        bb_rmi "$DA_REGISTRY/$BB_REPO:ctx$i"
        [[ -z $best_ours ]] || awk -v a="$t" -v b="$best_ours" 'BEGIN { exit !(a < b) }' && best_ours=$t
    done
    rm -rf "$ctx"

    bb_row "20k files / 300 MB: docker build (CLI, best of $rounds)" "$best_cli"
    bb_row "20k files / 300 MB: ours (best of $rounds)" "$best_ours" "ours/cli $(bb_ratio "$best_ours" "$best_cli")"
    bb_row "COPY layer content hash, ours = CLI" "" "$([[ -n $hash_ours && $hash_ours == "$hash_cli" ]] && echo "equal ($hash_ours)" || echo "DIFFERENT: ours $hash_ours cli $hash_cli")"
}

# Peak RSS of our process sending a 1 GB context, and the docker CLI's.
bb_case_rss() {
    local o=$BB_OUT
    local big=$BB_WORK/big rss_kb rss_cli_kb rss_bk_kb
    da_log "rss: generating a 1 GB context (64 x 16 MiB)"
    bb_context "$big" 64 16777216
    printf 'FROM %s\nLABEL bench=rss\n' "$DA_BASE_IMAGE" >"$big/Dockerfile"
    BB_TIME=1 bb_run "$o/rss" "$big" rss PUSH=false SKIP-EXISTING=false CACHE-FROM=none BUILDER=classic
    rss_kb=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$o/rss.rusage")
    bb_rmi "$DA_REGISTRY/$BB_REPO:rss"
    /usr/bin/time -v -o "$o/rss-cli.rusage" env DOCKER_BUILDKIT=0 docker build -q -t "da-bench-cli-$$:rss" "$big" >/dev/null 2>&1
    rss_cli_kb=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$o/rss-cli.rusage")
    bb_rmi "da-bench-cli-$$:rss"
    # BuildKit asks for the context only when a step reads it: a bind mount of all of it, no
    # layer written.
    printf 'FROM %s\nRUN --mount=type=bind,target=/ctx du -s /ctx > /size\n' "$DA_BASE_IMAGE" >"$big/Dockerfile"
    BB_TIME=1 bb_run "$o/rss-bk" "$big" rss-bk PUSH=false SKIP-EXISTING=false CACHE-FROM=none BUILDER=buildkit
    rss_bk_kb=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$o/rss-bk.rusage")
    bb_rmi "$DA_REGISTRY/$BB_REPO:rss-bk"
    rm -rf "$big"

    bb_row "1 GB context, BuildKit (session): peak RSS of ours (MB)" "$((rss_bk_kb / 1024))" "target <= 64; took $(<"$o/rss-bk.time") s"
    bb_row "1 GB context, classic (tar): peak RSS of ours (MB)" "$((rss_kb / 1024))" "target <= 64; docker CLI $((rss_cli_kb / 1024)) MB; ours took $(<"$o/rss.time") s"
}
