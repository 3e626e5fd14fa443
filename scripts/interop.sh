#!/usr/bin/env bash
# Install and build the other client libraries' tutorial-six programs (tests/interop/) that tests/interop.rs
# runs against ours, and tshark, which the tests decode their traffic with.
#
#   scripts/interop.sh [all|node|java|go|erlang|tshark]...    (default: all)
#
# Each program ends up as an executable $INTEROP_DIR/LANG/rpc_client and .../rpc_server (a binary, or a
# launcher that execs the runtime, so its pid is the program's). INTEROP_DIR defaults to
# ${CARGO_TARGET_DIR:-target}/interop. Idempotent: apt-get runs only for a missing package, and a language is
# rebuilt only when its sources or toolchain changed (a stamp of both beside the build); a second run takes
# ~0.2 s. Works as root on a fresh Debian 12 machine, or as a user with sudo.
set -euo pipefail
cd "$(dirname "$0")/.."

ROOT="$PWD"
SRC="$ROOT/tests/interop"
OUT="${INTEROP_DIR:-${CARGO_TARGET_DIR:-target}/interop}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
# The tutorial's pin (javascript-nodejs/package.json); also in tests/interop/node/package.json.
AMQPLIB_VERSION="0.10.9"

log() { printf 'interop.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

if [[ "$(id -u)" -eq 0 ]]; then SUDO=(); else SUDO=(sudo); fi
as_root() { "${SUDO[@]}" "$@"; }

installed() { [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]; }

APT_UPDATED=0
# Installs the Debian packages of those named that are missing.
need_packages() {
    local missing=() p
    for p in "$@"; do installed "$p" || missing+=("$p"); done
    ((${#missing[@]})) || return 0
    command -v apt-get >/dev/null || die "apt-get not found; install ${missing[*]} by hand"
    if ((!APT_UPDATED)); then
        as_root apt-get update -qq
        APT_UPDATED=1
    fi
    log "installing ${missing[*]} with apt-get"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
        >/dev/null || die "apt-get install ${missing[*]} failed"
}

# True when $OUT/$1/.stamp holds the given text: that build is current.
fresh() { [[ -f "$OUT/$1/.stamp" && "$(cat "$OUT/$1/.stamp")" == "$2" ]]; }
stamp_of() { cat "$@" | sha256sum | cut -c1-16; }

launcher() { # launcher PATH BODY...: an executable shell script that execs the runtime
    { echo '#!/bin/sh'; echo '# Made by scripts/interop.sh.'; printf '%s\n' "${@:2}"; } >"$1"
    chmod +x "$1"
}

build_node() {
    command -v node >/dev/null && command -v npm >/dev/null || need_packages nodejs npm
    local stamp
    stamp="$(stamp_of "$SRC"/node/*)-$(node --version)"
    fresh node "$stamp" && return 0
    log "node: amqplib $AMQPLIB_VERSION and the tutorial's programs into $OUT/node"
    rm -rf "$OUT/node" && mkdir -p "$OUT/node"
    cp "$SRC"/node/package.json "$SRC"/node/rpc_client.js "$SRC"/node/rpc_server.js "$OUT/node/"
    (cd "$OUT/node" && npm install --no-audit --no-fund --no-package-lock --loglevel=error >&2) \
        || die "npm install amqplib@$AMQPLIB_VERSION failed (the npm registry must be reachable)"
    [[ "$(node -p "require('$OUT/node/node_modules/amqplib/package.json').version")" == "$AMQPLIB_VERSION" ]] \
        || die "npm installed another amqplib than $AMQPLIB_VERSION"
    local p
    for p in rpc_client rpc_server; do
        launcher "$OUT/node/$p" "exec node \"\$(dirname \"\$0\")/$p.js\" \"\$@\""
    done
    echo "$stamp" >"$OUT/node/.stamp"
}

JAVA_CP=/usr/share/java/amqp-client.jar:/usr/share/java/slf4j-api.jar:/usr/share/java/slf4j-simple.jar
build_java() {
    command -v javac >/dev/null || need_packages default-jdk-headless
    need_packages librabbitmq-client-java libslf4j-java
    local stamp
    stamp="$(stamp_of "$SRC"/java/*.java /usr/share/java/amqp-client.jar)-$(readlink -f "$(command -v javac)")"
    fresh java "$stamp" && return 0
    log "java: compiling RPCClient and RPCServer into $OUT/java"
    rm -rf "$OUT/java" && mkdir -p "$OUT/java/classes"
    javac -nowarn -cp "$JAVA_CP" -d "$OUT/java/classes" "$SRC"/java/RPCClient.java "$SRC"/java/RPCServer.java \
        || die "javac failed"
    local p class
    for p in rpc_client:RPCClient rpc_server:RPCServer; do
        class="${p#*:}"
        # slf4j-simple logs the client library's warnings to stderr (the tutorial's README runs it so too).
        launcher "$OUT/java/${p%%:*}" "exec java -cp \"\$(dirname \"\$0\")/classes:$JAVA_CP\" $class \"\$@\""
    done
    echo "$stamp" >"$OUT/java/.stamp"
}

GO_SRC=/usr/share/gocode/src/github.com/rabbitmq/amqp091-go
build_go() {
    need_packages golang-go golang-github-rabbitmq-amqp091-go-dev
    local stamp
    stamp="$(stamp_of "$SRC"/go/*.go "$GO_SRC"/*.go)-$(go version)"
    fresh go "$stamp" && return 0
    log "go: building rpc_client and rpc_server against Debian's amqp091-go into $OUT/go"
    rm -rf "$OUT/go" && mkdir -p "$OUT/go"
    local p
    for p in rpc_client rpc_server; do
        # GOPATH mode on Debian's source tree: no module download, no proxy.
        GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$OUT/go/cache" GOFLAGS= GOPROXY=off \
            go build -o "$OUT/go/$p" "$SRC/go/$p.go" || die "go build $p.go failed"
    done
    rm -rf "$OUT/go/cache"
    echo "$stamp" >"$OUT/go/.stamp"
}

# amqp_client and its dependencies as the broker ships them.
erl_libs() {
    local dir
    dir="$(ls -d /usr/lib/rabbitmq/lib/rabbitmq_server-*/plugins 2>/dev/null | sort -V | tail -n1)"
    [[ -n "$dir" ]] && compgen -G "$dir/amqp_client-*/ebin" >/dev/null || return 1
    echo "$dir"
}
build_erlang() {
    need_packages rabbitmq-server
    command -v erlc >/dev/null || need_packages erlang-base
    local libs stamp
    libs="$(erl_libs)" || die "no amqp_client under /usr/lib/rabbitmq/lib/rabbitmq_server-*/plugins"
    stamp="$(stamp_of "$SRC"/erlang/*.erl)-$libs-$(cat "$(dirname "$(dirname "$(readlink -f "$(command -v erlc)")")")/releases/"*/OTP_VERSION 2>/dev/null)"
    fresh erlang "$stamp" && return 0
    log "erlang: compiling rpc_client, rpc_server (and a uuid:get_v4/0 stand-in) against $libs"
    rm -rf "$OUT/erlang" && mkdir -p "$OUT/erlang"
    ERL_LIBS="$libs" erlc -o "$OUT/erlang" "$SRC"/erlang/*.erl || die "erlc failed"
    # The tutorial's rebar3 aliases run `rpc_client:start(["10"]), init:stop()` in a shell; the same here,
    # with the arguments after -extra.
    launcher "$OUT/erlang/rpc_client" \
        "ERL_LIBS=$libs exec erl -noshell -pa \"\$(dirname \"\$0\")\" -eval 'rpc_client:start(init:get_plain_arguments()), init:stop().' -extra \"\$@\""
    launcher "$OUT/erlang/rpc_server" \
        "ERL_LIBS=$libs exec erl -noshell -pa \"\$(dirname \"\$0\")\" -eval 'rpc_server:start(), init:stop().'"
    echo "$stamp" >"$OUT/erlang/.stamp"
}

ensure_tshark() {
    command -v tshark >/dev/null || need_packages tshark
}

targets=("$@")
((${#targets[@]})) || targets=(all)
for t in "${targets[@]}"; do
    case "$t" in
        all) build_node; build_java; build_go; build_erlang; ensure_tshark ;;
        node) build_node ;;
        java) build_java ;;
        go) build_go ;;
        erlang) build_erlang ;;
        tshark) ensure_tshark ;;
        -h | --help | help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown target '$t' (expected: all, node, java, go, erlang, tshark)" ;;
    esac
done
