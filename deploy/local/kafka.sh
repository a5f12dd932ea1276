#!/usr/bin/env bash
# A single-node Apache Kafka broker in KRaft mode on 127.0.0.1, run from jars
# resolved from Maven Central (no distribution tarball, no Docker). Besides
# PLAINTEXT on $KAFKA_PORT, which the tests use, it has a SASL_SSL listener on
# $KAFKA_SASL_SSL_PORT and an SSL listener requiring client certificates on
# $KAFKA_MTLS_PORT, for the secured-connection tests (see kafka-tls.sh).
#   kafka.sh fetch|start|stop|status
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/kafka-tls.sh"

KAFKA_DATA=$STACK_DATA/kafka
PIDFILE=$STACK_DATA/kafka.pid
KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}

java_run() {
  kafka_jvm "$KAFKA_DATA" "$KAFKA_HEAP_OPTS"
  "${KAFKA_JVM[@]}" "$@"
}

write_config() {
  mkdir -p "$KAFKA_DATA/logs"
  cat > "$KAFKA_DATA/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT,SASL_SSL://127.0.0.1:$KAFKA_SASL_SSL_PORT,MTLS://127.0.0.1:$KAFKA_MTLS_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,SASL_SSL://127.0.0.1:$KAFKA_SASL_SSL_PORT,MTLS://127.0.0.1:$KAFKA_MTLS_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,MTLS:SSL
log.dirs=$KAFKA_DATA/data
num.partitions=12
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=12
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=12
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.retention.hours=-1
log.segment.bytes=268435456
$(kafka_tls_props SASL_SSL "$KAFKA_SASL_SSL_PORT")
$(kafka_mtls_props MTLS "$KAFKA_MTLS_PORT")
PROPS
  chmod 600 "$KAFKA_DATA/server.properties" # it holds the PLAIN user's password
  kafka_log4j_config "$KAFKA_DATA"
}

start() {
  if port_open "$KAFKA_PORT"; then
    log "kafka already listening on 127.0.0.1:$KAFKA_PORT"
    if ! port_open "$KAFKA_SASL_SSL_PORT"; then
      log "it has no SASL_SSL listener on 127.0.0.1:$KAFKA_SASL_SSL_PORT (started by an older kafka.sh): run kafka.sh stop, then kafka.sh start"
    fi
    return 0
  fi
  kafka_fetch
  kafka_tls_certs
  write_config
  if [ ! -f "$KAFKA_DATA/data/meta.properties" ]; then
    local cluster_id scram
    cluster_id=$(java_run kafka.tools.StorageTool random-uuid | tail -n 1)
    log "formatting KRaft log dir (cluster $cluster_id)"
    read -ra scram <<<"$(kafka_tls_format_args)"
    java_run kafka.tools.StorageTool format --standalone -t "$cluster_id" "${scram[@]}" \
      -c "$KAFKA_DATA/server.properties" >"$KAFKA_DATA/logs/format.log" 2>&1
    scram_marker >"$KAFKA_DATA/scram-user"
  fi
  log "starting kafka $KAFKA_VERSION on 127.0.0.1:$KAFKA_PORT"
  kafka_jvm "$KAFKA_DATA" "$KAFKA_HEAP_OPTS"
  nohup "${KAFKA_JVM[@]}" kafka.Kafka "$KAFKA_DATA/server.properties" \
    >"$KAFKA_DATA/logs/stdout.log" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  if ! wait_for "kafka" 120 port_open "$KAFKA_PORT"; then
    tail -n 40 "$KAFKA_DATA/logs/stdout.log" "$KAFKA_DATA/logs/server.log" >&2 || true
    exit 1
  fi
  # A log dir formatted before the SCRAM user existed (or with another
  # password) gets it now. The credentials live in the cluster's metadata,
  # so this runs once, not at every restart.
  if [ "$(cat "$KAFKA_DATA/scram-user" 2>/dev/null)" != "$(scram_marker)" ]; then
    kafka_tls_scram_user "127.0.0.1:$KAFKA_PORT"
    scram_marker >"$KAFKA_DATA/scram-user"
  fi
  log "kafka ready"
}

# scram_marker: the log dir's cluster id and a digest of the password, which
# the SCRAM user was last set for.
scram_marker() {
  echo "$(grep '^cluster.id=' "$KAFKA_DATA/data/meta.properties") $(sha256sum <"$KAFKA_TLS_DIR/password" | cut -c1-16)"
}

case "${1:-start}" in
  fetch) kafka_fetch ;;
  start) start ;;
  stop) stop_pid kafka "$PIDFILE" ;;
  status)
    port_open "$KAFKA_PORT" && echo "kafka: up (127.0.0.1:$KAFKA_PORT)" || echo "kafka: down"
    port_open "$KAFKA_SASL_SSL_PORT" && echo "kafka SASL_SSL: up (127.0.0.1:$KAFKA_SASL_SSL_PORT)" || echo "kafka SASL_SSL: down"
    port_open "$KAFKA_MTLS_PORT" && echo "kafka SSL with client certificates: up (127.0.0.1:$KAFKA_MTLS_PORT)" || echo "kafka SSL with client certificates: down"
    ;;
  *) echo "usage: $0 fetch|start|stop|status" >&2; exit 2 ;;
esac
