#!/usr/bin/env bash
# A single-node Apache Kafka broker in KRaft mode on 127.0.0.1, run from jars
# resolved from Maven Central (no distribution tarball, no Docker).
#   kafka.sh fetch|start|stop|status
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

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
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
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
PROPS
  kafka_log4j_config "$KAFKA_DATA"
}

start() {
  if port_open "$KAFKA_PORT"; then
    log "kafka already listening on 127.0.0.1:$KAFKA_PORT"
    return 0
  fi
  kafka_fetch
  write_config
  if [ ! -f "$KAFKA_DATA/data/meta.properties" ]; then
    local cluster_id
    cluster_id=$(java_run kafka.tools.StorageTool random-uuid | tail -n 1)
    log "formatting KRaft log dir (cluster $cluster_id)"
    java_run kafka.tools.StorageTool format --standalone -t "$cluster_id" \
      -c "$KAFKA_DATA/server.properties" >"$KAFKA_DATA/logs/format.log" 2>&1
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
  log "kafka ready"
}

case "${1:-start}" in
  fetch) kafka_fetch ;;
  start) start ;;
  stop) stop_pid kafka "$PIDFILE" ;;
  status) port_open "$KAFKA_PORT" && echo "kafka: up (127.0.0.1:$KAFKA_PORT)" || echo "kafka: down" ;;
  *) echo "usage: $0 fetch|start|stop|status" >&2; exit 2 ;;
esac
