#!/usr/bin/env bash
# Shared settings and helpers for the local stack scripts. Sourced, not run.
set -euo pipefail

STACK_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# Downloads and builds live outside the clone so a fresh clone reuses them.
STOCKFLOW_CACHE=${STOCKFLOW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/stockflow}
# Runtime data (logs, Kafka log dirs, Redis files, pid files) is git-ignored.
STACK_DATA=${STACK_DATA:-$STACK_ROOT/.stack}

KAFKA_VERSION=${KAFKA_VERSION:-4.1.1}
KAFKA_PORT=${KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-9093}
# The same broker's secured listeners (deploy/local/kafka-tls.sh): SASL_SSL,
# and SSL requiring a client certificate.
KAFKA_SASL_SSL_PORT=${KAFKA_SASL_SSL_PORT:-9094}
KAFKA_MTLS_PORT=${KAFKA_MTLS_PORT:-9095}
REDIS_PORT=${REDIS_PORT:-6379}
JAEGER_VERSION=${JAEGER_VERSION:-v1.76.0}
JAEGER_OTLP_GRPC_PORT=4317
JAEGER_OTLP_HTTP_PORT=4318
JAEGER_QUERY_PORT=16686

mkdir -p "$STOCKFLOW_CACHE" "$STACK_DATA"

log() { printf '[stack] %s\n' "$*" >&2; }

# port_open PORT: true when something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# pid_alive FILE: true when FILE names a running process.
pid_alive() {
  [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

# wait_for DESC TIMEOUT CMD...: polls CMD every half second until it succeeds.
wait_for() {
  local desc=$1 timeout=$2
  shift 2
  local deadline=$((SECONDS + timeout))
  until "$@"; do
    if [ $SECONDS -ge $deadline ]; then
      log "$desc not ready after ${timeout}s"
      return 1
    fi
    sleep 0.5
  done
}

# stop_pid NAME FILE: SIGTERM, wait up to 30 s, then SIGKILL.
stop_pid() {
  local name=$1 file=$2
  if ! pid_alive "$file"; then
    rm -f "$file"
    return 0
  fi
  local pid
  pid=$(cat "$file")
  log "stopping $name (pid $pid)"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$file"
}
