#!/usr/bin/env bash
# deploy-action in two minutes, with no cloud account: a sandbox on this machine, and the real
# binary run for the 8 Nova services at once, as the staging matrix runs it.
#
#   scripts/demo.sh           set up (first time) and run; run it again to see every job skip
#   scripts/demo.sh --reset   forget the sandbox (remote, checkouts, images stay in the registry)
#
# It installs and starts what it needs with scripts/services.sh (Debian packages, a Docker
# engine, or the one already running; a registry on 127.0.0.1), then:
#   1. a bare git remote, served by git daemon, holding a sample Nova monorepo
#      (tests/fixtures/consumer: 8 tiny services, a Kustomize base and the staging overlay);
#   2. one checkout per job, as each matrix job has its own;
#   3. the binary (cargo build --release) for all 8 services concurrently, with the runner's
#      INPUT_* environment (hyphenated names included: `env 'INPUT_DRY-RUN=false' ...`);
#   4. the overlay diff on the remote, `kubectl kustomize`'s images, each job's outputs and
#      the step summary.
#
# Env: DA_DEMO_DIR (.da-services/demo), DA_DEMO_BUILD (true; false promotes without building),
# DA_DEMO_PARALLEL (8 jobs at once), DA_DEMO_BIN (use this binary instead of building one).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib/common.sh
source "$ROOT/scripts/lib/common.sh"
DA_LOG_TAG=demo

SERVICES=(auth-service user-service content-service feed-service media-service
    messaging-service search-service streaming-service)
OVERLAY=k8s/infrastructure/overlays/staging
DEMO=${DA_DEMO_DIR:-$ROOT/.da-services/demo}
BUILD=${DA_DEMO_BUILD:-true}
PARALLEL=${DA_DEMO_PARALLEL:-8}

bold() { if [[ -t 1 ]]; then printf '\033[1m%s\033[0m\n' "$*"; else printf '%s\n' "$*"; fi; }
section() {
    echo
    bold "== $*"
}

if [[ ${1:-} == --reset ]]; then
    if [[ -s $DEMO/remote-path ]]; then rm -rf "$(<"$DEMO/remote-path")"; fi
    rm -rf "$DEMO"
    da_log "sandbox removed ($DEMO)"
    exit 0
fi
[[ $# == 0 ]] || da_die "usage: scripts/demo.sh [--reset]"

T0=$(da_now_ms)

# ---------------------------------------------------------------- 0. components
section "Components (scripts/services.sh)"
bash "$ROOT/scripts/services.sh" install
bash "$ROOT/scripts/services.sh" start
# shellcheck source=/dev/null
source "$ROOT/.da-services/env"

section "Binary (cargo build --release)"
if [[ -z ${DA_DEMO_BIN:-} ]] && ! command -v cargo >/dev/null; then
    da_die "cargo not found: install Rust 1.95+ (https://rustup.rs), or set DA_DEMO_BIN to a built binary"
fi
if [[ -n ${DA_DEMO_BIN:-} ]]; then
    BIN=$(realpath "$DA_DEMO_BIN") # a binary built elsewhere; the jobs run in other directories
else
    BIN=$(bash "$ROOT/scripts/image.sh" binary)
fi
"$BIN" --version || true

# ---------------------------------------------------------------- 1. sandbox
mkdir -p "$DEMO"
REMOTE_NAME=nova-demo.git
REMOTE_DIR=$DA_GIT_DAEMON_BASE/$REMOTE_NAME
REMOTE_URL=$DA_GIT_DAEMON_URL/$REMOTE_NAME

git_q() { git -c user.name="Nova Dev" -c user.email=dev@nova.example -c init.defaultBranch=main "$@"; }

section "Sandbox"
if [[ ! -d $REMOTE_DIR ]]; then
    seed=$(mktemp -d)
    cp -a "$ROOT/tests/fixtures/consumer/." "$seed/"
    # The overlay starts out pointing at this sandbox's registry.
    sed -i "s#registry\.local/#$DA_REGISTRY/#" "$seed/$OVERLAY/kustomization.yaml"
    git_q -C "$seed" init -q
    git_q -C "$seed" add -A
    git_q -C "$seed" commit -qm "Nova monorepo: 8 services, base and staging overlay"
    git_q init -q --bare "$REMOTE_DIR"
    git_q -C "$seed" push -q "$REMOTE_DIR" main
    rm -rf "$seed" "$DEMO/checkouts"
    echo "$REMOTE_DIR" >"$DEMO/remote-path"
    da_log "remote: created $REMOTE_URL (bare repo $REMOTE_DIR)"
else
    da_log "remote: reusing $REMOTE_URL"
fi
# The commit a push to main would deploy: the monorepo's source commit, not the overlay
# commits the jobs add (GITHUB_TOKEN pushes trigger no workflow).
if [[ ! -d $DEMO/checkouts ]]; then
    for svc in "${SERVICES[@]}"; do
        git_q clone -q "$REMOTE_URL" "$DEMO/checkouts/$svc"
    done
    da_log "checkouts: one per job under $DEMO/checkouts"
fi
SHA=$(git -C "$DEMO/checkouts/${SERVICES[0]}" rev-parse HEAD)
BEFORE=$(git -C "$REMOTE_DIR" rev-parse main)
echo "remote      $REMOTE_URL (main at ${BEFORE:0:12})"
echo "registry    http://$DA_REGISTRY (user $DA_REGISTRY_USER)"
echo "deploying   ${SHA:0:12} (GITHUB_SHA), build: $BUILD, $PARALLEL jobs at once"

# Every input action.yml declares, set to "" (= its default) as the runner sets them all.
mapfile -t INPUT_NAMES < <(awk '/^inputs:/ {on=1; next} /^[^ ]/ {on=0} on && /^  [a-z][a-z0-9-]*:/ {sub(/^  /, ""); sub(/:.*/, ""); print}' "$ROOT/action.yml")
((${#INPUT_NAMES[@]} > 0)) || da_die "no inputs found in action.yml"

# run_job SERVICE DIR: one matrix job, the way the runner starts a container action.
run_job() {
    local svc=$1 dir=$2 name
    local envs=(PATH="$PATH" HOME="$dir/home" DOCKER_HOST="${DOCKER_HOST:-}"
        GITHUB_ACTIONS=true CI=true
        GITHUB_WORKSPACE="$DEMO/checkouts/$svc" GITHUB_SHA="$SHA" GITHUB_REF=refs/heads/main
        GITHUB_REPOSITORY=nova/monorepo GITHUB_SERVER_URL=https://github.com
        GITHUB_RUN_ID=1 GITHUB_JOB=deploy RUNNER_TEMP="$dir/tmp"
        GITHUB_OUTPUT="$dir/output" GITHUB_STEP_SUMMARY="$dir/summary")
    for name in "${INPUT_NAMES[@]}"; do
        envs+=("INPUT_${name^^}=")
    done
    envs+=(
        "INPUT_SERVICE=$svc"
        "INPUT_REPOSITORY=nova/$svc"
        "INPUT_DOCKERFILE=backend/$svc/Dockerfile"
        "INPUT_CONTEXT=."
        "INPUT_KUSTOMIZATION=$OVERLAY"
        "INPUT_BUILD=$BUILD"
        "INPUT_DRY-RUN=false"
        "INPUT_REGISTRY=$DA_REGISTRY"
        "INPUT_REGISTRY-USERNAME=$DA_REGISTRY_USER"
        "INPUT_REGISTRY-PASSWORD=$DA_REGISTRY_PASSWORD"
    )
    mkdir -p "$dir/home" "$dir/tmp"
    : >"$dir/output"
    : >"$dir/summary"
    local t0 rc=0
    t0=$(da_now_ms)
    (cd "$DEMO/checkouts/$svc" && env -i "${envs[@]}" "$BIN") >"$dir/log" 2>&1 </dev/null || rc=$?
    echo "$rc $(da_since "$t0")" >"$dir/status"
}

# ---------------------------------------------------------------- 2. the matrix
RUN=$DEMO/runs/$(date +%Y%m%d-%H%M%S)
section "Matrix: ${#SERVICES[@]} jobs, $PARALLEL at a time (logs in $RUN/<service>/log)"
t_matrix=$(da_now_ms)
running=0
for svc in "${SERVICES[@]}"; do
    mkdir -p "$RUN/$svc"
    run_job "$svc" "$RUN/$svc" &
    running=$((running + 1))
    if ((running >= PARALLEL)); then
        wait -n || true
        running=$((running - 1))
    fi
done
wait || true
MATRIX_TIME=$(da_since "$t_matrix")

failed=()
for svc in "${SERVICES[@]}"; do
    read -r rc took <"$RUN/$svc/status"
    if [[ $rc == 0 ]]; then
        printf '  %-18s ok      %s\n' "$svc" "$took"
    else
        printf '  %-18s FAILED  %s (exit %s)\n' "$svc" "$took" "$rc"
        failed+=("$svc")
    fi
done
echo "  all jobs done in $MATRIX_TIME"

# ---------------------------------------------------------------- 3. what happened
# Reads KEY from a GITHUB_OUTPUT file (k=v lines and k<<DELIM heredocs).
output_of() {
    awk -v key="$2" '
        d != "" { if ($0 == d) { d = ""; next } if (k == key) print; next }
        index($0, "<<") { k = substr($0, 1, index($0, "<<") - 1); d = substr($0, index($0, "<<") + 2); next }
        { i = index($0, "="); if (i && substr($0, 1, i - 1) == key) print substr($0, i + 1) }
    ' "$1"
}

section "Outputs (\$GITHUB_OUTPUT of each job)"
printf '  %-18s %-6s %-8s %-9s %-13s %s\n' service built changed attempts commit image-ref
for svc in "${SERVICES[@]}"; do
    o=$RUN/$svc/output
    commit=$(output_of "$o" commit)
    printf '  %-18s %-6s %-8s %-9s %-13s %s\n' "$svc" "$(output_of "$o" built)" "$(output_of "$o" changed)" \
        "$(output_of "$o" attempts)" "${commit:0:12}" "$(output_of "$o" image-ref)"
done

section "Step summary (\$GITHUB_STEP_SUMMARY, all jobs)"
# Each job writes its own heading and table; print one table.
for svc in "${SERVICES[@]}"; do cat "$RUN/$svc/summary"; done | grep '^|' | awk '!seen[$0]++'

AFTER=$(git -C "$REMOTE_DIR" rev-parse main)
section "Overlay on the remote: git diff ${BEFORE:0:12}..${AFTER:0:12} -- $OVERLAY"
if [[ $BEFORE == "$AFTER" ]]; then
    echo "  (no change: every service was already up to date)"
else
    echo "  $(git -C "$REMOTE_DIR" rev-list --count "$BEFORE..$AFTER") new commits:"
    git -C "$REMOTE_DIR" log --format='    %h %s' "$BEFORE..$AFTER"
    git -C "$REMOTE_DIR" diff --no-color "$BEFORE" "$AFTER" -- "$OVERLAY" | sed 's/^/  /'
fi

section "kubectl kustomize $OVERLAY (what Argo CD would deploy)"
render=$(mktemp -d)
git clone -q "$REMOTE_DIR" "$render/repo"
kubectl kustomize "$render/repo/$OVERLAY" | grep -E '^\s+(- )?image:' | sed 's/^ */  /' | sort
rm -rf "$render"

echo
if ((${#failed[@]})); then
    for svc in "${failed[@]}"; do
        bold "-- $svc failed; last lines of $RUN/$svc/log:"
        tail -n 15 "$RUN/$svc/log" | sed 's/^/  /'
    done
    da_die "${#failed[@]} of ${#SERVICES[@]} jobs failed (${failed[*]})"
fi
if [[ $BEFORE == "$AFTER" ]]; then
    bold "Done in $(da_since "$T0"): nothing to do, every image was in the registry and the overlay up to date."
else
    bold "Done in $(da_since "$T0"). Run scripts/demo.sh again: every job skips the build and finds the overlay up to date."
fi
echo "The sandbox's services are still running, for a re-run or a look around; scripts/services.sh stop stops them."
