#!/usr/bin/env bash
# The newcomer's one command: make sure RabbitMQ is up, then run a server and a client in one process
# (`amqp-rpc demo`): tutorial six's exchange, many calls in flight, big integers, typed errors.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/broker.sh
exec cargo run --release --quiet -- demo "$@"
