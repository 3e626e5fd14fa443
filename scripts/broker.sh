#!/usr/bin/env bash
# Make sure the local RabbitMQ broker the tests talk to is up, and that pika (the reference client used by
# tests/pika and fixtures/tools) is importable.
#
#   scripts/broker.sh           ensure broker + pika (idempotent; ~10 ms when both are already there)
#   scripts/broker.sh status    report broker and pika state; exit 1 if the broker does not answer AMQP
#   scripts/broker.sh stop      stop the broker node (for fault tests and for testing this script)
#
# Broker: AMQP_HOST:AMQP_PORT (default 127.0.0.1:5672), guest/guest, vhost "/". Works as root on a fresh Debian
# machine (installs rabbitmq-server with apt) and as a user with sudo.
set -euo pipefail

AMQP_HOST="${AMQP_HOST:-127.0.0.1}"
AMQP_PORT="${AMQP_PORT:-5672}"
START_TIMEOUT="${BROKER_START_TIMEOUT:-60}"

log() { printf 'broker.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

if [[ "$(id -u)" -eq 0 ]]; then SUDO=(); else SUDO=(sudo); fi
as_root() { "${SUDO[@]}" "$@"; }

# True when the port accepts a TCP connection and answers the AMQP 0-9-1 protocol header with the start of a
# connection.start method frame (type 1, channel 0). A listening socket alone is not enough: the node opens the
# port before the broker application is ready, and another program could hold it.
amqp_answers() {
    local reply
    reply="$(timeout 3 bash -c '
        exec 3<>"/dev/tcp/$0/$1" || exit 1
        printf "AMQP\x00\x00\x09\x01" >&3
        head -c 3 <&3' "$AMQP_HOST" "$AMQP_PORT" 2>/dev/null | od -An -tx1 | tr -d ' \n')" || return 1
    [[ "$reply" == "010000" ]]
}

port_open() {
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$AMQP_HOST" "$AMQP_PORT" 2>/dev/null
}

apt_install() {
    command -v apt-get >/dev/null || die "apt-get not found; install $* by hand"
    log "installing $* with apt-get"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

start_broker() {
    if ! command -v rabbitmq-server >/dev/null; then
        apt_install rabbitmq-server
    fi
    command -v rabbitmqctl >/dev/null || die "rabbitmqctl not found after installing rabbitmq-server"

    # A node that is running with its app stopped (rabbitmqctl stop_app) only needs start_app; starting a
    # second node would fail on the node name.
    if as_root rabbitmqctl -q ping >/dev/null 2>&1; then
        log "node is up but not serving AMQP; rabbitmqctl start_app"
        as_root rabbitmqctl -q start_app >/dev/null 2>&1 || true
    else
        log "starting rabbitmq-server -detached"
        # The Debian wrapper drops to the rabbitmq user itself when run as root.
        as_root rabbitmq-server -detached >/dev/null 2>&1 || true
    fi

    local deadline=$((SECONDS + START_TIMEOUT))
    until amqp_answers; do
        if ((SECONDS >= deadline)); then
            log "broker did not answer AMQP on $AMQP_HOST:$AMQP_PORT within ${START_TIMEOUT}s"
            if [[ -d /var/log/rabbitmq ]]; then
                log "last lines of /var/log/rabbitmq:"
                as_root sh -c 'tail -n 20 /var/log/rabbitmq/*.log /var/log/rabbitmq/startup_* 2>/dev/null' >&2 || true
            fi
            die "could not start RabbitMQ"
        fi
        sleep 1
    done
    # The listener opens late in boot, but await_startup is the broker's own word that boot finished.
    as_root rabbitmqctl -q await_startup >/dev/null 2>&1 \
        || die "rabbitmqctl await_startup failed although $AMQP_HOST:$AMQP_PORT answers AMQP"
    log "broker is up on $AMQP_HOST:$AMQP_PORT"
}

ensure_broker() {
    if amqp_answers; then
        return 0
    fi
    start_broker
}

ensure_pika() {
    if ! command -v python3 >/dev/null; then
        apt_install python3
    fi
    if python3 -c 'import pika' 2>/dev/null; then
        return 0
    fi
    log "installing pika"
    # pip first (pyenv/venv Pythons); Debian's system Python refuses pip installs (PEP 668), so fall back to
    # the distribution package there.
    if python3 -m pip --version >/dev/null 2>&1 && python3 -m pip install -q pika >&2; then
        :
    elif command -v apt-get >/dev/null; then
        apt_install python3-pika
    fi
    python3 -c 'import pika' 2>/dev/null || die "could not install pika (try: python3 -m pip install pika)"
}

# prometheus_client: its OpenMetrics parser checks our /metrics output in tests/metrics.rs.
ensure_prometheus_client() {
    if python3 -c 'import prometheus_client.openmetrics.parser' 2>/dev/null; then
        return 0
    fi
    log "installing prometheus_client"
    if python3 -m pip --version >/dev/null 2>&1 && python3 -m pip install -q prometheus_client >&2; then
        :
    elif command -v apt-get >/dev/null; then
        apt_install python3-prometheus-client
    fi
    python3 -c 'import prometheus_client.openmetrics.parser' 2>/dev/null \
        || die "could not install prometheus_client (try: python3 -m pip install prometheus_client)"
}

status() {
    local rc=0
    if amqp_answers; then
        echo "amqp:   $AMQP_HOST:$AMQP_PORT answers AMQP 0-9-1"
    elif port_open; then
        echo "amqp:   $AMQP_HOST:$AMQP_PORT accepts TCP but does not answer AMQP 0-9-1"
        rc=1
    else
        echo "amqp:   nothing listening on $AMQP_HOST:$AMQP_PORT"
        rc=1
    fi
    if command -v rabbitmqctl >/dev/null; then
        local version
        version="$(as_root rabbitmq-diagnostics -q server_version 2>/dev/null)" || version="node not running"
        echo "broker: rabbitmq $version"
    else
        echo "broker: rabbitmq-server not installed"
    fi
    if command -v python3 >/dev/null && python3 -c 'import pika' 2>/dev/null; then
        echo "pika:   $(python3 -c 'import pika; print(pika.__version__)')"
    else
        echo "pika:   not importable"
    fi
    return "$rc"
}

stop_broker() {
    command -v rabbitmqctl >/dev/null || die "rabbitmq-server is not installed"
    as_root rabbitmqctl -q stop >/dev/null 2>&1 || log "node was not running"
    local deadline=$((SECONDS + 30))
    while port_open; do
        ((SECONDS < deadline)) || die "port $AMQP_PORT still open 30s after rabbitmqctl stop"
        sleep 0.5
    done
    log "broker stopped"
}

case "${1:-ensure}" in
    ensure)
        ensure_broker
        ensure_pika
        ensure_prometheus_client
        ;;
    status) status ;;
    stop) stop_broker ;;
    -h | --help | help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' ;;
    *) die "unknown subcommand '$1' (expected: ensure, status, stop)" ;;
esac
