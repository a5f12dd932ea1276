#!/usr/bin/env bash
# Jaeger v2 all-in-one (in-memory storage) built with the Go toolchain from the
# module under deploy/jaeger, so its dependencies stay out of the service's go.mod.
#   jaeger.sh build|start|stop|status
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

JAEGER_BIN=$STOCKFLOW_CACHE/bin/jaeger-$JAEGER_VERSION
JAEGER_DATA=$STACK_DATA/jaeger
PIDFILE=$JAEGER_DATA/jaeger.pid

build() {
  if [ -x "$JAEGER_BIN" ]; then return 0; fi
  log "building jaeger $JAEGER_VERSION (takes several minutes the first time)"
  mkdir -p "$(dirname "$JAEGER_BIN")"
  (cd "$STACK_ROOT/deploy/jaeger" && go build -o "$JAEGER_BIN.tmp" github.com/jaegertracing/jaeger/cmd/jaeger)
  mv "$JAEGER_BIN.tmp" "$JAEGER_BIN"
}

ready() {
  port_open "$JAEGER_QUERY_PORT" && port_open "$JAEGER_OTLP_HTTP_PORT" && port_open "$JAEGER_OTLP_GRPC_PORT"
}

start() {
  if ready; then
    log "jaeger already listening on 127.0.0.1:$JAEGER_QUERY_PORT"
    return 0
  fi
  build
  mkdir -p "$JAEGER_DATA"
  log "starting jaeger (OTLP 4317/4318, query 16686)"
  nohup "$JAEGER_BIN" >"$JAEGER_DATA/jaeger.log" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  if ! wait_for "jaeger" 60 ready; then
    tail -n 40 "$JAEGER_DATA/jaeger.log" >&2 || true
    exit 1
  fi
  log "jaeger ready"
}

case "${1:-start}" in
  build) build ;;
  start) start ;;
  stop) stop_pid jaeger "$PIDFILE" ;;
  status) ready && echo "jaeger: up (query 127.0.0.1:$JAEGER_QUERY_PORT)" || echo "jaeger: down" ;;
  *) echo "usage: $0 build|start|stop|status" >&2; exit 2 ;;
esac
