#!/usr/bin/env bash
# A second redis-server on 127.0.0.1, reachable only over TLS and only as an
# ACL user, so that the integration tests prove the secured connection path
# (private CA, client certificate, server name, username and password)
# against a real server rather than a fake.
#   redis-tls.sh start|stop|status
# The CA, certificates and password are generated once under
# $STACK_DATA/redis-tls (git-ignored) and reused: tests read them from there.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REDIS_TLS_PORT=${REDIS_TLS_PORT:-6390}
TLS_DATA=$STACK_DATA/redis-tls
PIDFILE=$TLS_DATA/redis.pid

# certs: a CA, a server certificate for 127.0.0.1 and localhost, and a client
# certificate, all signed by that CA. EC keys: quick to make, and the
# certificates only ever live on this machine.
certs() {
  [ -s "$TLS_DATA/client.key" ] && [ -s "$TLS_DATA/password" ] && return 0
  apt_install openssl openssl "to make the test certificates"
  log "generating a test CA and certificates in $TLS_DATA"
  mkdir -p "$TLS_DATA"
  (
    cd "$TLS_DATA"
    umask 077
    openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
      -keyout ca.key -out ca.crt -days 3650 -subj "/CN=stockflow test CA" 2>/dev/null
    openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
      -keyout server.key -out server.csr -subj "/CN=localhost" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
      -out server.crt -days 3650 -extfile server.ext 2>/dev/null
    openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
      -keyout client.key -out client.csr -subj "/CN=stockflow" 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' >client.ext
    openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
      -out client.crt -days 3650 -extfile client.ext 2>/dev/null
    rm -f server.csr client.csr server.ext client.ext
    openssl rand -hex 24 >password
  )
}

# The service needs scripts (EVAL/EVALSHA), pub/sub, CLIENT TRACKING, SCAN
# and MEMORY USAGE; none of them is in @dangerous, which holds what a
# service account should never run (FLUSHALL, CONFIG, DEBUG, KEYS...).
# The default user is off: an unauthenticated connection can do nothing.
conf() {
  cat >"$TLS_DATA/redis.conf" <<CONF
bind 127.0.0.1
port 0
tls-port $REDIS_TLS_PORT
tls-cert-file $TLS_DATA/server.crt
tls-key-file $TLS_DATA/server.key
tls-ca-cert-file $TLS_DATA/ca.crt
tls-auth-clients optional
dir $TLS_DATA
save ""
appendonly no
daemonize yes
pidfile $PIDFILE
logfile $TLS_DATA/redis.log
user default off
user stockflow on >$(cat "$TLS_DATA/password") ~* &* +@all -@dangerous
CONF
  chmod 600 "$TLS_DATA/redis.conf"
}

start() {
  if port_open "$REDIS_TLS_PORT"; then
    log "redis (TLS) already listening on 127.0.0.1:$REDIS_TLS_PORT"
    return 0
  fi
  command -v redis-server >/dev/null || "$(dirname "${BASH_SOURCE[0]}")/redis.sh" install
  # Debian builds redis-server with TLS; a build without it would refuse
  # tls-port, so say so instead of leaving a puzzling log.
  # (grep reads all of ldd's output: with -q it could stop early, and under
  # pipefail ldd's SIGPIPE would read as "no TLS".)
  if ! ldd "$(command -v redis-server)" 2>/dev/null | grep libssl >/dev/null; then
    log "this redis-server is built without TLS; the TLS tests cannot run"
    return 1
  fi
  certs
  conf
  log "starting redis-server with TLS on 127.0.0.1:$REDIS_TLS_PORT"
  redis-server "$TLS_DATA/redis.conf"
  wait_for "redis (TLS)" 30 port_open "$REDIS_TLS_PORT"
  log "redis (TLS) ready"
}

case "${1:-start}" in
  start) start ;;
  stop) stop_pid "redis (TLS)" "$PIDFILE" ;;
  status) port_open "$REDIS_TLS_PORT" && echo "redis (TLS): up (127.0.0.1:$REDIS_TLS_PORT)" || echo "redis (TLS): down" ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
