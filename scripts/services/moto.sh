# shellcheck shell=bash
# moto_server (a local AWS API, for the ECR tests) on 127.0.0.1, from the venv.
# Sourced by scripts/services.sh, which sets STATE, PIDS, VENV and MOTO_PORT.

component moto "$VENV/bin/moto_server"

moto_ok() { [[ $(http_code "http://127.0.0.1:$MOTO_PORT/moto-api/") == 200 ]]; }

start_moto() {
    [[ -x $VENV/bin/moto_server ]] || da_die "moto: $VENV/bin/moto_server missing: run scripts/services.sh install"
    local args=("$VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT")
    local sig
    sig=$(printf '%s\n' "${args[@]}" | signature /dev/stdin)
    reuse moto "$sig" moto_ok && return 0
    da_require_free_port moto "$MOTO_PORT" DA_MOTO_PORT
    local pid
    pid=$(da_spawn "$PIDS/moto.pid" "$STATE/moto.log" "${args[@]}")
    echo "$sig" >"$PIDS/moto.sig"
    da_wait moto 60 "$STATE/moto.log" "$pid" moto_ok
    da_log "moto: ready on http://127.0.0.1:$MOTO_PORT (pid $pid)"
}
