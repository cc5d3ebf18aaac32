# shellcheck shell=bash
# `scripts/bench.sh race`: sourced by scripts/bench.sh, which documents it and defines WORK,
# BIN, HOOK, METHODS, start_daemon, cleanup and median.

job_name() { printf 'job-%02d-service' "$1"; }

# A bare repo whose overlay has one entry per job, and the 0.3 s hook.
seed_repo() { # name
    local bare=$WORK/git/$1.git seed=$WORK/seed-$1 i name
    git init -q --bare -b main "$bare"
    git init -q -b main "$seed"
    mkdir -p "$seed/$OVERLAY"
    {
        printf 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../../base\nimages:\n'
        for ((i = 0; i < N; i++)); do
            name=$(job_name "$i")
            printf '  - name: %s\n    newName: registry.local/nova/%s\n    newTag: seed\n' "$name" "$name"
        done
    } >"$seed/$FILE"
    git -C "$seed" add -A
    git -C "$seed" -c user.name=seed -c user.email=seed@example.com commit -qm seed
    git -C "$seed" push -q "$bare" main
    rm -rf "$seed"
    printf '#!/bin/sh\n%s\n' "$HOOK" >"$bare/hooks/pre-receive"
    # When each update landed (after the ref moved, so off the branch's critical path).
    printf '#!/bin/sh\ndate +%%s%%N >>%s\n' "$WORK/landed-$1" >"$bare/hooks/post-update"
    chmod +x "$bare/hooks/pre-receive" "$bare/hooks/post-update"
}

# "first median shortest waited": seconds from the release to the first landing, the median and
# shortest gaps between landings, and the sum of every gap's excess over the shortest. The
# shortest gap is what one update costs this server at best (fetch, push, hook); the excess is
# time nobody was pushing on the new tip.
landings() { # run t0_ms
    local log=$WORK/landed-$1 first
    [[ -s $log ]] || { echo "- - - -"; return; }
    first=$(sort -n "$log" | head -1 | awk -v t0="$2" '{ printf "%.2f", $1 / 1e9 - t0 / 1000 }')
    sort -n "$log" | awk 'NR > 1 { printf "%.3f\n", ($1 - prev) / 1e9 } { prev = $1 }' | sort -n |
        awk -v first="$first" '{ g[NR] = $1; sum += $1 }
            END {
                if (NR == 0) { printf "%s 0 0 0\n", first; exit }
                med = (NR % 2) ? g[(NR + 1) / 2] : (g[NR / 2] + g[NR / 2 + 1]) / 2
                printf "%s %.2f %.2f %.2f\n", first, med, g[1], sum - NR * g[1]
            }'
}

# One clone per job, made before the barrier so only the race is timed.
clone_for() { # run i
    local dir=$WORK/ws/$1/$2
    mkdir -p "$WORK/ws/$1"
    git clone -q "$WORK/git/$1.git" "$dir"
    git -C "$dir" remote set-url origin "$URL_BASE/$1.git"
    git -C "$dir" config user.name "job $2"
    git -C "$dir" config user.email "job$2@example.com"
}

# ---------------------------------------------------------------- the methods

# Each job: $1 run (method and round), $2 index, $3 tag. Writes "<exit> <push attempts>" to its
# result file.

job_ours() {
    local ws=$WORK/ws/$1/$2 name out rc=0 attempts lost stale conn fetches looks
    name=$(job_name "$2")
    out=$WORK/out/$1-$2
    env -i PATH="$PATH" HOME="$WORK" GITHUB_ACTIONS=true GITHUB_WORKSPACE="$ws" \
        GITHUB_REF=refs/heads/main GITHUB_SHA=0123456789abcdef0123456789abcdef01234567 \
        GITHUB_OUTPUT="$out.output" GITHUB_STEP_SUMMARY="$out.summary" \
        INPUT_SERVICE="$name" INPUT_TAG="$3" INPUT_BUILD=false INPUT_REGISTRY=registry.local \
        INPUT_REPOSITORY="nova/$name" "INPUT_IMAGE-NAME=$name" \
        "$BIN" >"$out.log" 2>&1 || rc=$?
    # write-back: A attempt(s), L lost race(s), S stale push(es) not sent, C connection retries,
    # F fetch(es), K look(s) for a landing, …
    local stats
    stats=$(sed -n 's/^write-back: \([0-9]*\) attempt(s), \([0-9]*\) lost race(s), \([0-9]*\) stale push(es) not sent, \([0-9]*\) connection retr[a-z]*, \([0-9]*\) fetch(es), \([0-9]*\) look.*/\1 \2 \3 \4 \5 \6/p' "$out.log" | tail -1)
    [[ -n $stats ]] || stats="$(grep -c '^attempt [0-9]*:' "$out.log" || true) 0 0 0 0 0"
    read -r attempts lost stale conn fetches looks <<<"$stats"
    echo "$rc $attempts $((attempts + stale)) $lost $stale $conn $fetches $looks" >"$WORK/res/$1/$2"
}

# Full jitter: a random delay in [0, min(cap, base * 2^retry)), retry counting from 0.
jitter() { # try (1-based)
    local cap_ms=$((500 << ($1 - 1)))
    ((cap_ms > 8000 || cap_ms <= 0)) && cap_ms=8000
    local ms=$(((RANDOM * 32768 + RANDOM) % cap_ms))
    printf '%d.%03d' $((ms / 1000)) $((ms % 1000))
}

job_reapply() {
    local ws=$WORK/ws/$1/$2 name try attempts=0 fetches=0 rc=1
    name=$(job_name "$2")
    cd "$ws" || return
    for ((try = 1; try <= 20; try++)); do
        fetches=$((fetches + 1))
        if ! { git fetch -q origin main 2>>"$WORK/out/$1-$2.log" && git reset -q --hard origin/main; }; then
            sleep "$(jitter "$try")"
            continue
        fi
        sed -i "/^  - name: $name\$/,/newTag:/ s/newTag: .*/newTag: $3/" "$FILE"
        if git diff --quiet; then
            rc=0
            break
        fi
        git commit -qam "update $name to $3"
        attempts=$((attempts + 1))
        if git push -q origin HEAD:main 2>/dev/null; then
            rc=0
            break
        fi
        sleep "$(jitter "$try")"
    done
    echo "$rc $attempts $attempts 0 0 0 $fetches 0" >"$WORK/res/$1/$2"
}

job_rebase() {
    local ws=$WORK/ws/$1/$2 name tries=0 attempts=1 rc=0
    name=$(job_name "$2")
    cd "$ws" || return
    sed -i "/^  - name: $name\$/,/newTag:/ s/newTag: .*/newTag: $3/" "$FILE"
    git commit -qam "update $name to $3"
    until git push -q origin HEAD:main 2>/dev/null; do
        if ((++tries >= 5)); then
            rc=1
            break
        fi
        git pull -q --rebase origin main 2>/dev/null || git rebase --abort 2>/dev/null || true
        attempts=$((attempts + 1))
    done
    # Each pull fetched once, the clone made before the barrier did not count.
    echo "$rc $attempts $attempts 0 0 0 $((attempts - 1)) 0" >"$WORK/res/$1/$2"
}

# ---------------------------------------------------------------- one race

run_method() { # method round
    local m=$1 id=$1$2 i pids=() t0 t1 go=$WORK/go-$1$2
    seed_repo "$id"
    for ((i = 0; i < N; i++)); do clone_for "$id" "$i"; done
    mkdir -p "$WORK/res/$id" "$WORK/out" "$WORK/ready/$id"
    # The barrier: every job blocks reading one line from the fifo; we write N lines at once.
    mkfifo "$go"
    exec 3<>"$go"
    for ((i = 0; i < N; i++)); do
        (
            touch "$WORK/ready/$id/$i"
            read -r _ <"$go"
            "job_$m" "$id" "$i" "t$i-$id"
        ) &
        pids+=($!)
    done
    # Wait until every job is at the barrier (cheap: N tiny files).
    until (($(find "$WORK/ready/$id" -type f | wc -l) == N)); do sleep 0.01; done
    t0=$(da_now_ms)
    printf '\n%.0s' $(seq "$N") >&3
    for i in "${pids[@]}"; do wait "$i" || true; done
    t1=$(da_now_ms)
    exec 3>&-
    rm -f "$go"
    report "$m" "$id" "$t0" "$t1"
}

declare -A WALLS MAXES FIRSTS GAPS SHORTEST WAITED
ROW='%-8s %5s %8s %6s %5s %4s %4s %7s %8s %7s %5s %5s %5s %7s %7s %6s %6s %6s\n'
report() { # method run t0_ms t1_ms
    local m=$1 id=$2 text landed=0 failed=0 pushes=0 lost=0 stale=0 conn=0 fetches=0 looks=0 i rc n p l st c f k wall
    local -a counts=()
    text=$(git -C "$WORK/git/$id.git" show "main:$FILE")
    for ((i = 0; i < N; i++)); do
        grep -qx "    newTag: t$i-$id" <<<"$text" && landed=$((landed + 1))
        read -r rc n p l st c f k <"$WORK/res/$id/$i" || { rc=1 n=0 p=0 l=0 st=0 c=0 f=0 k=0; }
        ((rc == 0)) || failed=$((failed + 1))
        counts+=("${n:-0}")
        pushes=$((pushes + ${p:-0})) lost=$((lost + ${l:-0})) stale=$((stale + ${st:-0})) conn=$((conn + ${c:-0}))
        fetches=$((fetches + ${f:-0})) looks=$((looks + ${k:-0}))
    done
    local sorted median most p90
    sorted=$(printf '%s\n' "${counts[@]}" | sort -n)
    median=$(awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }' <<<"$sorted")
    p90=$(awk '{ v[NR] = $1 } END { i = int(NR * 0.9 + 0.999); if (i < 1) i = 1; print v[i] }' <<<"$sorted")
    most=$(tail -1 <<<"$sorted")
    wall=$(da_secs "$3" "$4")
    WALLS[$N/$m]+="$wall "
    MAXES[$N/$m]+="$most "
    local first gap shortest waited
    read -r first gap shortest waited <<<"$(landings "$id" "$3")"
    FIRSTS[$N/$m]+="$first " GAPS[$N/$m]+="$gap " SHORTEST[$N/$m]+="$shortest " WAITED[$N/$m]+="$waited "
    # shellcheck disable=SC2059
    printf "$ROW" "$m" "$N" "$landed/$N" "$failed" "$median" "$p90" "$most" \
        "$(awk -v p="$pushes" -v l="$landed" 'BEGIN { printf "%.2f", (l ? p / l : 0) }')" \
        "$(awk -v p="$fetches" -v l="$landed" 'BEGIN { printf "%.2f", (l ? p / l : 0) }')" \
        "$(awk -v p="$looks" -v l="$landed" 'BEGIN { printf "%.2f", (l ? p / l : 0) }')" \
        "$lost" "$stale" "$conn" "$wall" \
        "$(awk -v w="$wall" -v n="$N" -v h="$HOOK_SECONDS" 'BEGIN { printf "%.2f", w / (n * h) }')" \
        "$first" "$gap" "$shortest"
}

bench_race() {
    local sizes=("$@")
    ((${#sizes[@]})) || sizes=(8 32 64 128)
    for N in "${sizes[@]}"; do
        if ! [[ $N =~ ^[0-9]+$ ]] || ((N < 1 || N > 256)); then da_die "N must be 1..256, got $N"; fi
    done
    local rounds=${DA_BENCH_ROUNDS:-1}
    [[ $rounds =~ ^[1-9][0-9]*$ ]] || da_die "DA_BENCH_ROUNDS must be a positive number, got $rounds"
    command -v git >/dev/null || da_die "git is needed"
    bench_bin

    WORK=$(mktemp -d "${TMPDIR:-/tmp}/da-bench.XXXXXX")
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    start_daemon

    da_log "race: N = ${sizes[*]}, pre-receive hook \`$HOOK\`, methods: $METHODS, rounds: $rounds"
    # shellcheck disable=SC2059
    printf "$ROW" method N landed failed med p90 max push/ld fetch/ld look/ld lost stale conn wall_s /floor 1st_s gap_s gap_mn
    local m r ours base
    for N in "${sizes[@]}"; do
        for ((r = 1; r <= rounds; r++)); do
            for m in $METHODS; do run_method "$m" "$N-$r"; done
        done
    done
    echo
    for N in "${sizes[@]}"; do
        for m in $METHODS; do
            printf 'N=%-4s %-8s median wall %6s s over %d round(s), %5.2f x the floor (%s s); most attempts in any round: %s\n' \
                "$N" "$m" "$(median <<<"${WALLS[$N/$m]}")" "$rounds" \
                "$(awk -v w="$(median <<<"${WALLS[$N/$m]}")" -v n="$N" -v h="$HOOK_SECONDS" 'BEGIN { print w / (n * h) }')" \
                "$(awk -v n="$N" -v h="$HOOK_SECONDS" 'BEGIN { print n * h }')" \
                "$(tr ' ' '\n' <<<"${MAXES[$N/$m]}" | grep . | sort -n | tail -1)"
            # Medians over rounds: wall = first landing + (landed - 1) x shortest gap + waited.
            awk -v n="$N" -v m="$m" -v f="$(median <<<"${FIRSTS[$N/$m]//-/}")" \
                -v md="$(median <<<"${GAPS[$N/$m]//-/}")" -v s="$(median <<<"${SHORTEST[$N/$m]//-/}")" \
                -v w="$(median <<<"${WAITED[$N/$m]//-/}")" 'BEGIN {
                    printf "N=%-4s %-8s first landing %.2f s; gaps between landings: median %.2f s, shortest %.2f s; waited beyond the shortest gap: %.2f s\n",
                        n, m, f, md, s, w }'
        done
        if [[ -n ${WALLS[$N/ours]:-} && -n ${WALLS[$N/reapply]:-} ]]; then
            ours=$(median <<<"${WALLS[$N/ours]}")
            base=$(median <<<"${WALLS[$N/reapply]}")
            awk -v n="$N" -v a="$ours" -v b="$base" 'BEGIN { printf "N=%-4s ratio ours/reapply: %.2f\n", n, a / b }'
        fi
    done
}

