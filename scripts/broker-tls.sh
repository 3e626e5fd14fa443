#!/usr/bin/env bash
# Give the local RabbitMQ a TLS listener on 5671 for the amqps:// tests, next to the plain 5672 listener
# (which stays as it is).
#
#   scripts/broker-tls.sh           ensure certificates + TLS listener (idempotent; quick when already set up)
#   scripts/broker-tls.sh status    exit 0 when 5671 answers TLS with our test CA
#
# Certificates are made for the tests with openssl: a throw-away CA, a server certificate for localhost /
# 127.0.0.1 and a client certificate (mutual TLS), all in AMQP_TLS_DIR (default /tmp/amqp-rpc-tls). The
# broker verifies client certificates when offered but does not require them (fail_if_no_peer_cert = false),
# so the plain PLAIN-login tests work over TLS too. The broker is restarted only when its configuration
# changed. Run scripts/broker.sh first (it installs and starts RabbitMQ).
set -euo pipefail

TLS_DIR="${AMQP_TLS_DIR:-/tmp/amqp-rpc-tls}"
TLS_PORT="${AMQP_TLS_PORT:-5671}"
AMQP_PORT="${AMQP_PORT:-5672}"
CONF="${RABBITMQ_CONFIG_FILE:-/etc/rabbitmq/rabbitmq.conf}"
BEGIN="# >>> amqp-rpc scripts/broker-tls.sh >>>"
END="# <<< amqp-rpc scripts/broker-tls.sh <<<"

log() { printf 'broker-tls.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

if [[ "$(id -u)" -eq 0 ]]; then SUDO=(); else SUDO=(sudo); fi
as_root() { "${SUDO[@]}" "$@"; }

if ! command -v openssl >/dev/null; then
    command -v apt-get >/dev/null || die "openssl not found (install it)"
    log "installing openssl with apt-get"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null
fi
command -v rabbitmqctl >/dev/null || die "rabbitmq-server not installed: run scripts/broker.sh first"

# True when TLS_PORT completes a TLS handshake whose certificate chains to our CA and names localhost.
tls_answers() {
    [[ -f "$TLS_DIR/ca.pem" ]] || return 1
    timeout 5 openssl s_client -connect "127.0.0.1:$TLS_PORT" -servername localhost \
        -CAfile "$TLS_DIR/ca.pem" -verify_hostname localhost -verify_return_error \
        </dev/null >/dev/null 2>&1
}

make_certs() {
    if [[ -f "$TLS_DIR/ca.pem" && -f "$TLS_DIR/server.pem" && -f "$TLS_DIR/server.key" \
        && -f "$TLS_DIR/client.pem" && -f "$TLS_DIR/client.key" ]]; then
        return 0
    fi
    log "generating test CA, server and client certificates in $TLS_DIR"
    mkdir -p "$TLS_DIR"
    local tmp
    tmp="$(mktemp -d)"
    # shellcheck disable=SC2064
    trap "rm -rf '$tmp'" RETURN
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
        -subj "/CN=amqp-rpc test CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -keyout "$tmp/ca.key" -out "$tmp/ca.pem" 2>/dev/null
    issue() { # name cn extensions
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$2" \
            -keyout "$tmp/$1.key" -out "$tmp/$1.csr" 2>/dev/null
        printf '%s\n' "$3" >"$tmp/$1.ext"
        openssl x509 -req -in "$tmp/$1.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -CAcreateserial \
            -days 3650 -extfile "$tmp/$1.ext" -out "$tmp/$1.pem" 2>/dev/null
    }
    issue server localhost "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1"
    issue client amqp-rpc-test-client "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
    cp "$tmp/ca.pem" "$tmp/server.pem" "$tmp/server.key" "$tmp/client.pem" "$tmp/client.key" "$TLS_DIR/"
    # Test-only keys; the broker runs as the rabbitmq user and must read its own.
    chmod 755 "$TLS_DIR"
    chmod 644 "$TLS_DIR"/*.pem "$TLS_DIR"/*.key
}

config_block() {
    cat <<EOF
$BEGIN
listeners.tcp.default = $AMQP_PORT
listeners.ssl.default = $TLS_PORT
ssl_options.cacertfile = $TLS_DIR/ca.pem
ssl_options.certfile = $TLS_DIR/server.pem
ssl_options.keyfile = $TLS_DIR/server.key
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = false
$END
EOF
}

# Write our block into rabbitmq.conf (replacing an older one). Returns 0 when the file changed.
configure() {
    local current="" new
    if as_root test -f "$CONF"; then current="$(as_root cat "$CONF")"; fi
    # Everything but our old block (command substitution drops trailing newlines), then our block.
    new="$(printf '%s\n' "$current" | awk -v b="$BEGIN" -v e="$END" '$0 == b {skip = 1; next} $0 == e {skip = 0; next} !skip')"
    if [[ -n "$new" ]]; then new="$new"$'\n'; fi
    new="$new$(config_block)"
    if [[ "$new" == "$current" ]]; then
        return 1
    fi
    log "writing the TLS listener to $CONF"
    as_root mkdir -p "$(dirname "$CONF")"
    printf '%s\n' "$new" | as_root tee "$CONF" >/dev/null
    return 0
}

restart_broker() {
    log "restarting RabbitMQ to load the TLS listener"
    as_root rabbitmqctl -q stop >/dev/null 2>&1 || true
    local deadline=$((SECONDS + 30))
    while timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' "$AMQP_PORT" 2>/dev/null; do
        ((SECONDS < deadline)) || die "broker did not stop"
        sleep 0.5
    done
    as_root rabbitmq-server -detached >/dev/null 2>&1 || true
    deadline=$((SECONDS + 60))
    until tls_answers; do
        if ((SECONDS >= deadline)); then
            as_root sh -c 'tail -n 20 /var/log/rabbitmq/*.log 2>/dev/null' >&2 || true
            die "TLS listener on $TLS_PORT did not come up"
        fi
        sleep 1
    done
    as_root rabbitmqctl -q await_startup >/dev/null 2>&1 || die "rabbitmqctl await_startup failed"
}

ensure() {
    make_certs
    if configure || ! tls_answers; then
        restart_broker
    fi
    log "TLS listener up on 127.0.0.1:$TLS_PORT (CA: $TLS_DIR/ca.pem)"
}

case "${1:-ensure}" in
    ensure) ensure ;;
    status) tls_answers && echo "tls: 127.0.0.1:$TLS_PORT answers with the test CA" ;;
    -h | --help | help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' ;;
    *) die "unknown subcommand '$1' (expected: ensure, status)" ;;
esac
