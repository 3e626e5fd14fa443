#!/usr/bin/env bash
# A throwaway 3-node RabbitMQ cluster on this machine, beside (never touching) the default broker on 5672.
#
#   scripts/cluster.sh start            start rabbit-a/b/c@localhost on 127.0.0.1:5681/5682/5683 and cluster them
#   scripts/cluster.sh stop             stop every node of the cluster and delete its directory
#   scripts/cluster.sh status           cluster_status as node a sees it; exit 1 if a node is not running
#   scripts/cluster.sh stop-node a|b|c  stop one node (rabbitmqctl stop: the Erlang VM exits)
#   scripts/cluster.sh start-node a|b|c start it again (it rejoins with its old data)
#   scripts/cluster.sh uris             print the three AMQP URIs, one a line
#   scripts/cluster.sh ctl a|b|c ARGS   rabbitmqctl ARGS against that node (e.g. list_queues name leader)
#
# Each node has its own data, logs, config and pid file under CLUSTER_DIR (default /tmp/amqp-rpc-cluster), its
# own AMQP and distribution ports on 127.0.0.1, and the cluster's own Erlang cookie (HOME=CLUSTER_DIR/home, used
# by the nodes and by this script's rabbitmqctl alike). The default node keeps its name (rabbit@<hostname>), its
# cookie (/var/lib/rabbitmq/.erlang.cookie) and /etc/rabbitmq: none of it is read or written here.
# Needs root (or the rabbitmq user) only to run the broker's own scripts; installs nothing.
set -euo pipefail

CLUSTER_DIR="${CLUSTER_DIR:-/tmp/amqp-rpc-cluster}"
START_TIMEOUT="${CLUSTER_START_TIMEOUT:-120}"
NODES=(a b c)

log() { printf 'cluster.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

sbin() {
    local dir
    for dir in /usr/lib/rabbitmq/lib/rabbitmq_server-*/sbin; do
        [[ -x "$dir/rabbitmq-server" ]] && { echo "$dir"; return; }
    done
    die "RabbitMQ is not installed (bash scripts/broker.sh installs it)"
}
SBIN="$(sbin)"

node_name() { echo "rabbit-$1@localhost"; }
amqp_port() { case "$1" in a) echo 5681 ;; b) echo 5682 ;; c) echo 5683 ;; *) die "no node '$1' (a, b or c)" ;; esac; }
dist_port() { echo $(($(amqp_port "$1") + 20000)); }

# The environment every broker script of node $1 runs with (into the array NODE_ENV). Explicit paths for
# everything the defaults would take from /etc/rabbitmq or /var/lib/rabbitmq, so that the default node's files are
# never read. One scheduler without busy-waiting: three idle nodes must not eat the 2 shared cores.
node_env() {
    local n="$1" dir="$CLUSTER_DIR/$1"
    NODE_ENV=(
        HOME="$CLUSTER_DIR/home"
        RABBITMQ_NODENAME="$(node_name "$n")"
        RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
        RABBITMQ_NODE_PORT="$(amqp_port "$n")"
        RABBITMQ_DIST_PORT="$(dist_port "$n")"
        RABBITMQ_CONF_ENV_FILE="$CLUSTER_DIR/rabbitmq-env.conf"
        RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf"
        RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config"
        RABBITMQ_ENABLED_PLUGINS_FILE="$CLUSTER_DIR/enabled_plugins"
        RABBITMQ_MNESIA_BASE="$dir/mnesia"
        RABBITMQ_LOG_BASE="$dir/log"
        RABBITMQ_PID_FILE="$dir/pid"
        RABBITMQ_SCHEDULER_BIND_TYPE=u
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="+S 1:1 +sbwt none +sbwtdcpu none +sbwtdio none -kernel inet_dist_use_interface {127,0,0,1}"
    )
}

# rabbitmqctl (or another CLI tool) against node $1, with the cluster's cookie.
ctl() {
    local n="$1" tool="$2"
    shift 2
    # No erl_crash.dump in the caller's directory when a CLI tool cannot reach its node.
    env HOME="$CLUSTER_DIR/home" ERL_CRASH_DUMP_SECONDS=0 "$SBIN/$tool" -n "$(node_name "$n")" "$@"
}

# Without the cookie there is no cluster (and the CLI would only crash trying to create it).
node_up() {
    [[ -f "$CLUSTER_DIR/home/.erlang.cookie" ]] || return 1
    ctl "$1" rabbitmqctl -q ping >/dev/null 2>&1
}

prepare() {
    mkdir -p "$CLUSTER_DIR/home"
    if [[ ! -f "$CLUSTER_DIR/home/.erlang.cookie" ]]; then
        # The cookie must be the same on all three nodes and differ from the default node's.
        (umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$CLUSTER_DIR/home/.erlang.cookie")
    fi
    chmod 400 "$CLUSTER_DIR/home/.erlang.cookie"
    : >"$CLUSTER_DIR/rabbitmq-env.conf"
    # No plugins: management and prometheus would each cost memory and CPU on a shared 2-core machine.
    echo '[].' >"$CLUSTER_DIR/enabled_plugins"
    local n
    for n in "${NODES[@]}"; do
        mkdir -p "$CLUSTER_DIR/$n/mnesia" "$CLUSTER_DIR/$n/log"
        cat >"$CLUSTER_DIR/$n/rabbitmq.conf" <<EOF
listeners.tcp.1 = 127.0.0.1:$(amqp_port "$n")
loopback_users.guest = true
log.file.level = info
log.console = false
EOF
        echo '[].' >"$CLUSTER_DIR/$n/advanced.config"
    done
}

start_node() {
    local n="$1"
    if node_up "$n"; then
        log "$(node_name "$n") is already running"
        return 0
    fi
    log "starting $(node_name "$n") on 127.0.0.1:$(amqp_port "$n")"
    node_env "$n"
    env "${NODE_ENV[@]}" "$SBIN/rabbitmq-server" -detached >"$CLUSTER_DIR/$n/log/detached.out" 2>&1 || true
}

await_node() {
    local n="$1"
    local deadline=$((SECONDS + START_TIMEOUT))
    until node_up "$n"; do
        ((SECONDS < deadline)) || die "$(node_name "$n") did not come up within ${START_TIMEOUT}s (see $CLUSTER_DIR/$n/log)"
        sleep 1
    done
    ctl "$n" rabbitmqctl -q --timeout "$START_TIMEOUT" await_startup >/dev/null \
        || die "$(node_name "$n") did not finish booting (see $CLUSTER_DIR/$n/log)"
}

in_cluster() {
    ctl a rabbitmqctl -q cluster_status --formatter json 2>/dev/null | grep -q "\"$(node_name "$1")\""
}

running_in_cluster() {
    ctl a rabbitmqctl -q cluster_status --formatter json 2>/dev/null \
        | python3 -c 'import json,sys; print("\n".join(json.load(sys.stdin)["running_nodes"]))' 2>/dev/null \
        | grep -qx "$(node_name "$1")"
}

start() {
    command -v python3 >/dev/null || die "python3 is needed to read cluster_status"
    prepare
    local n
    # Boot the three in parallel: most of a boot is waiting, and 2 cores share it well.
    for n in "${NODES[@]}"; do start_node "$n"; done
    for n in "${NODES[@]}"; do await_node "$n"; done
    for n in b c; do
        if in_cluster "$n"; then continue; fi
        log "$(node_name "$n") joins $(node_name a)"
        # join_cluster logs harmless "tracked connection table" errors while the app is down: keep them out of
        # the test output, in the node's log directory.
        {
            ctl "$n" rabbitmqctl -q stop_app
            ctl "$n" rabbitmqctl -q reset
            ctl "$n" rabbitmqctl -q join_cluster "$(node_name a)"
            ctl "$n" rabbitmqctl -q start_app
            ctl "$n" rabbitmqctl -q --timeout "$START_TIMEOUT" await_startup
        } >>"$CLUSTER_DIR/$n/log/join.out" 2>&1 || die "$(node_name "$n") could not join (see $CLUSTER_DIR/$n/log/join.out)"
    done
    # Node a learns of a joined node's restart a moment after that node's start_app returns.
    local deadline=$((SECONDS + 30))
    for n in "${NODES[@]}"; do
        until running_in_cluster "$n"; do
            ((SECONDS < deadline)) || die "$(node_name "$n") is not a running member of the cluster"
            sleep 1
        done
    done
    log "cluster up: $(for n in "${NODES[@]}"; do printf '%s ' "$(node_name "$n")"; done)"
}

# Stop node $1 and wait until its VM is gone (the pid file's process has exited).
stop_node() {
    local n="$1" pid=""
    [[ -f "$CLUSTER_DIR/$n/pid" ]] && pid="$(cat "$CLUSTER_DIR/$n/pid" 2>/dev/null || true)"
    if node_up "$n"; then
        log "stopping $(node_name "$n")"
        ctl "$n" rabbitmqctl -q stop >/dev/null 2>&1 || true
    fi
    if [[ -n "$pid" ]]; then
        local deadline=$((SECONDS + 30))
        while kill -0 "$pid" 2>/dev/null; do
            if ((SECONDS >= deadline)); then
                log "$(node_name "$n") (pid $pid) still running 30s after stop: SIGKILL"
                kill -9 "$pid" 2>/dev/null || true
                break
            fi
            sleep 0.5
        done
    fi
}

stop() {
    local n
    for n in "${NODES[@]}"; do stop_node "$n"; done
    # A node whose pid file was lost: find its VM by its Erlang home, which only the cluster's nodes have.
    local pids
    pids="$(pgrep -f -- "-home $CLUSTER_DIR/home " || true)"
    if [[ -n "$pids" ]]; then
        log "killing leftover cluster VMs: $pids"
        # shellcheck disable=SC2086
        kill -9 $pids 2>/dev/null || true
    fi
    rm -rf "$CLUSTER_DIR"
    log "cluster stopped and removed"
}

status() {
    local rc=0 n
    for n in "${NODES[@]}"; do
        if node_up "$n"; then
            echo "$(node_name "$n"): running, AMQP on 127.0.0.1:$(amqp_port "$n")"
        else
            echo "$(node_name "$n"): not running"
            rc=1
        fi
    done
    ctl a rabbitmqctl -q cluster_status 2>/dev/null || true
    return "$rc"
}

uris() {
    local n
    for n in "${NODES[@]}"; do echo "amqp://guest:guest@127.0.0.1:$(amqp_port "$n")/%2f"; done
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    stop-node) stop_node "${2:?which node: a, b or c}" ;;
    start-node)
        start_node "${2:?which node: a, b or c}"
        await_node "$2"
        ;;
    uris) uris ;;
    ctl)
        node="${2:?which node: a, b or c}"
        shift 2
        ctl "$node" rabbitmqctl "$@"
        ;;
    -h | --help | help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' ;;
    *) die "unknown subcommand '${1:-}' (expected: start, stop, status, stop-node, start-node, uris, ctl)" ;;
esac
