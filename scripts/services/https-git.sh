# shellcheck shell=bash
# git http-backend behind lighttpd on 127.0.0.1, over TLS from a private CA,
# with basic auth for a token. Sourced by scripts/services.sh, which sets
# STATE, PIDS, TEMPLATES and HTTPS_GIT_PORT; start_https_git sets HTTPS_TOKEN.

component https-git "$STATE/https/lighttpd.conf"

# A private CA and a server certificate for 127.0.0.1 signed by it, made once.
ensure_tls() {
    local dir=$1
    [[ -s $dir/ca.pem && -s $dir/server.pem && -s $dir/server.key ]] && return 0
    local tmp
    tmp=$(mktemp -d)
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=deploy-action test CA" \
        -keyout "$tmp/ca.key" -out "$tmp/ca.pem" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
        -keyout "$tmp/server.key" -out "$tmp/server.csr" 2>/dev/null
    printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
        "extendedKeyUsage=serverAuth" "subjectAltName=IP:127.0.0.1" >"$tmp/ext"
    openssl x509 -req -in "$tmp/server.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" \
        -CAcreateserial -days 3650 -extfile "$tmp/ext" -out "$tmp/server.pem" 2>/dev/null
    chmod 600 "$tmp/server.key"
    mv -f "$tmp/ca.pem" "$tmp/server.pem" "$tmp/server.key" "$dir/"
    rm -rf "$tmp"
}

https_ok() { [[ $(http_code --cacert "$STATE/https/ca.pem" "https://127.0.0.1:$HTTPS_GIT_PORT/git/") == 401 ]]; }

start_https_git() {
    local dir=$STATE/https root=$STATE/https-git
    mkdir -p "$dir/www" "$dir/tmp" "$root"
    ensure_tls "$dir"
    [[ -s $dir/token ]] || random_hex 20 >"$dir/token"
    HTTPS_TOKEN=$(<"$dir/token")
    if [[ ! -s $dir/htpasswd ]] || ! htpasswd -vbB "$dir/htpasswd" x-access-token "$HTTPS_TOKEN" 2>/dev/null; then
        htpasswd -Bbn x-access-token "$HTTPS_TOKEN" | grep -v '^$' >"$dir/htpasswd"
    fi
    local backend
    backend=$(git --exec-path)/git-http-backend
    [[ -x $backend ]] || da_die "https-git: $backend not found"
    render "$TEMPLATES/lighttpd.conf.in" "$dir/lighttpd.conf" \
        "PORT=$HTTPS_GIT_PORT" "DIR=$dir" "ROOT=$root" "BACKEND=$backend" "PATH=$PATH"
    command -v lighttpd >/dev/null || da_die "lighttpd not found: run scripts/services.sh install"
    lighttpd -tt -f "$dir/lighttpd.conf" >"$STATE/https-git.log" 2>&1 || {
        da_tail "$STATE/https-git.log"
        da_die "https-git: lighttpd rejects $dir/lighttpd.conf; see $STATE/https-git.log"
    }
    local sig
    sig=$(signature "$dir/lighttpd.conf" "$dir/server.pem" "$dir/htpasswd")
    reuse https-git "$sig" https_ok && return 0
    da_require_free_port https-git "$HTTPS_GIT_PORT" DA_HTTPS_GIT_PORT
    local pid
    pid=$(da_spawn "$PIDS/https-git.pid" "$STATE/https-git.log" lighttpd -D -f "$dir/lighttpd.conf")
    echo "$sig" >"$PIDS/https-git.sig"
    da_wait https-git 20 "$STATE/https-git.log" "$pid" https_ok
    da_log "https-git: ready on https://127.0.0.1:$HTTPS_GIT_PORT/git (pid $pid; errors in $dir/error.log)"
}
