# shellcheck shell=bash
# A Distribution registry on 127.0.0.1 with htpasswd (bcrypt) auth. Sourced by
# scripts/services.sh, which sets STATE, PIDS, TEMPLATES, REGISTRY_PORT,
# REGISTRY_USER and MOTO_ACCOUNT_ID; start_registry sets REGISTRY_PASSWORD.

component registry "$STATE/registry/config.yml"

registry_ok() { [[ $(http_code "http://127.0.0.1:$REGISTRY_PORT/v2/") == 401 ]]; }

# The docker auth JSON for the password must have + or / in standard base64:
# bollard sends that encoding and the daemon silently drops what it cannot
# decode, so only such a password shows whether a push really authenticates.
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
    # shellcheck disable=SC2034 # read by write_env in scripts/services.sh
    REGISTRY_PASSWORD=$pw
    local sig
    sig=$(signature "$dir/config.yml")
    reuse registry "$sig" registry_ok && return 0
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
