#!/usr/bin/env bash
# redis-server from Debian packages on 127.0.0.1, with AOF (everysec).
#   redis.sh install|start|stop|status
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REDIS_DATA=$STACK_DATA/redis
PIDFILE=$REDIS_DATA/redis.pid

install() { apt_install redis-server redis-server "the local stack's Redis"; }

start() {
  if port_open "$REDIS_PORT"; then
    log "redis already listening on 127.0.0.1:$REDIS_PORT"
    return 0
  fi
  install
  mkdir -p "$REDIS_DATA"
  log "starting redis-server on 127.0.0.1:$REDIS_PORT"
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$REDIS_DATA" \
    --daemonize yes --pidfile "$PIDFILE" --logfile "$REDIS_DATA/redis.log" \
    --appendonly yes --appendfsync everysec --save "" \
    --protected-mode yes
  wait_for "redis" 30 port_open "$REDIS_PORT"
  log "redis ready"
}

case "${1:-start}" in
  install) install ;;
  start) start ;;
  stop) stop_pid redis "$PIDFILE" ;;
  status) port_open "$REDIS_PORT" && echo "redis: up (127.0.0.1:$REDIS_PORT)" || echo "redis: down" ;;
  *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
