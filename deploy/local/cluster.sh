#!/usr/bin/env bash
# A local cluster on 127.0.0.1 for failover tests, beside (not instead of) the
# single-node stack: three Kafka KRaft nodes, each broker and controller, with
# a static voter set, replication 3 and min ISR 2; and a Redis Cluster of three
# masters with one replica each. Runtime data is under $STACK_DATA/cluster.
#   cluster.sh up|down|status|reset
#   cluster.sh redis-master-of-slot SLOT
#   cluster.sh kill-redis PORT | redis-failover-wait PORT [TIMEOUT] | start-redis PORT
#   cluster.sh kill-broker N | start-broker N | broker-pid N
# The fault verbs print their results on stdout and log on stderr.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/kafka-tls.sh"

CLUSTER_DATA=$STACK_DATA/cluster
CLUSTER_KAFKA_NODES=(1 2 3)
# Node N listens on 29091+N (PLAINTEXT, clients and replication) and on
# 29191+N (CONTROLLER).
CLUSTER_KAFKA_PORT_BASE=29091
CLUSTER_CONTROLLER_PORT_BASE=29191
CLUSTER_KAFKA_HEAP_OPTS=${CLUSTER_KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}
# Redis Cluster nodes; each also uses PORT+10000 for the cluster bus.
CLUSTER_REDIS_PORTS=(7001 7002 7003 7004 7005 7006)

usage() {
  cat >&2 <<USAGE
usage: $0 up|down|status|reset
       $0 redis-master-of-slot SLOT
       $0 kill-redis PORT | redis-failover-wait PORT [TIMEOUT] | start-redis PORT
       $0 kill-broker N | start-broker N | broker-pid N
USAGE
  exit 2
}

# now_us: the wall clock in microseconds. since US: seconds since US, to a
# tenth.
now_us() { echo "${EPOCHREALTIME//[.,]/}"; }
since() {
  local d=$(($(now_us) - $1))
  printf '%d.%d\n' $((d / 1000000)) $((d % 1000000 / 100000))
}

# ---------------------------------------------------------------- Kafka

kafka_port() { echo $((CLUSTER_KAFKA_PORT_BASE + $1)); }
controller_port() { echo $((CLUSTER_CONTROLLER_PORT_BASE + $1)); }
kafka_dir() { echo "$CLUSTER_DATA/kafka-$1"; }
kafka_pidfile() { echo "$CLUSTER_DATA/kafka-$1/kafka.pid"; }

kafka_bootstrap() {
  local n out=""
  for n in "${CLUSTER_KAFKA_NODES[@]}"; do out+="${out:+,}127.0.0.1:$(kafka_port "$n")"; done
  echo "$out"
}

kafka_voters() {
  local n out=""
  for n in "${CLUSTER_KAFKA_NODES[@]}"; do out+="${out:+,}$n@127.0.0.1:$(controller_port "$n")"; done
  echo "$out"
}

# ---- The SASL_SSL listener ----
# Node N also listens on 29291+N with SASL_SSL (PLAIN, SCRAM-SHA-256/512,
# OAUTHBEARER), with the certificates and user of kafka-tls.sh, as the
# single-node broker's 9094 does.
CLUSTER_SASL_SSL_PORT_BASE=29291
sasl_ssl_port() { echo $((CLUSTER_SASL_SSL_PORT_BASE + $1)); }
sasl_ssl_bootstrap() {
  local n out=""
  for n in "${CLUSTER_KAFKA_NODES[@]}"; do out+="${out:+,}127.0.0.1:$(sasl_ssl_port "$n")"; done
  echo "$out"
}
# extra_listeners N: one line "NAME PROTOCOL PORT" per additional listener of
# node N; each is added to listeners, advertised.listeners and
# listener.security.protocol.map. extra_listener_props N: their property
# lines, appended at the end of node N's server.properties.
extra_listeners() { echo "SASL_SSL SASL_SSL $(sasl_ssl_port "$1")"; }
extra_listener_props() { kafka_tls_props SASL_SSL "$(sasl_ssl_port "$1")"; }

kafka_write_config() {
  local n=$1 dir port cport
  dir=$(kafka_dir "$n")
  port=$(kafka_port "$n")
  cport=$(controller_port "$n")
  local listeners="PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport"
  local advertised="PLAINTEXT://127.0.0.1:$port"
  local protocols="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
  local name proto xport
  while read -r name proto xport; do
    [ -n "$name" ] || continue
    listeners+=",$name://127.0.0.1:$xport"
    advertised+=",$name://127.0.0.1:$xport"
    protocols+=",$name:$proto"
  done < <(extra_listeners "$n")
  mkdir -p "$dir"
  kafka_log4j_config "$dir"
  cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$(kafka_voters)
listeners=$listeners
advertised.listeners=$advertised
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=$protocols
log.dirs=$dir/data
num.partitions=12
default.replication.factor=3
min.insync.replicas=2
offsets.topic.replication.factor=3
offsets.topic.num.partitions=12
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
transaction.state.log.num.partitions=12
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.retention.hours=-1
log.segment.bytes=268435456
# ---- extra listener properties (extra_listener_props) ----
$(extra_listener_props "$n")
PROPS
  chmod 600 "$dir/server.properties" # it holds the PLAIN user's password
}

# kafka_tool CLASS ARGS...: runs a Kafka command-line class from the jars.
kafka_tool() {
  mkdir -p "$CLUSTER_DATA/tools"
  [ -f "$CLUSTER_DATA/tools/log4j2.properties" ] || kafka_log4j_config "$CLUSTER_DATA/tools"
  kafka_jvm "$CLUSTER_DATA/tools" "-Xms64m -Xmx256m"
  "${KAFKA_JVM[@]}" -XX:TieredStopAtLevel=1 "$@"
}

# kafka_cluster_id: the cluster id every node is formatted with, made once.
kafka_cluster_id() {
  local file=$CLUSTER_DATA/kafka-cluster-id
  if [ ! -s "$file" ]; then
    kafka_tool kafka.tools.StorageTool random-uuid | tail -n 1 >"$file.tmp"
    mv "$file.tmp" "$file"
  fi
  cat "$file"
}

# scram_marker: the cluster id and a digest of the password the SCRAM user
# was last set for (at format time, or by kafka_tls_scram_user).
scram_marker() {
  echo "$(cat "$CLUSTER_DATA/kafka-cluster-id") $(sha256sum <"$KAFKA_TLS_DIR/password" | cut -c1-16)"
}

# kafka_launch N: starts node N in the background unless it is already up or
# starting; formats its log dir first if needed. Does not wait.
kafka_launch() {
  local n=$1 dir pidfile
  dir=$(kafka_dir "$n")
  pidfile=$(kafka_pidfile "$n")
  if pid_alive "$pidfile"; then
    log "kafka-$n already running (pid $(cat "$pidfile"))"
    return 0
  fi
  if port_open "$(kafka_port "$n")"; then
    log "kafka-$n: something else listens on 127.0.0.1:$(kafka_port "$n")"
    return 1
  fi
  kafka_write_config "$n"
  if [ ! -f "$dir/data/meta.properties" ]; then
    local id
    id=$(kafka_cluster_id)
    log "formatting kafka-$n (cluster $id)"
    local scram
    read -ra scram <<<"$(kafka_tls_format_args)"
    if ! kafka_tool kafka.tools.StorageTool format -t "$id" "${scram[@]}" \
      -c "$dir/server.properties" >"$dir/logs/format.log" 2>&1; then
      cat "$dir/logs/format.log" >&2
      return 1
    fi
    scram_marker >"$CLUSTER_DATA/scram-user"
  fi
  log "starting kafka-$n on 127.0.0.1:$(kafka_port "$n") (controller $(controller_port "$n"))"
  kafka_jvm "$dir" "$CLUSTER_KAFKA_HEAP_OPTS"
  nohup "${KAFKA_JVM[@]}" kafka.Kafka "$dir/server.properties" \
    >"$dir/logs/stdout.log" 2>&1 </dev/null &
  echo $! >"$pidfile"
}

# kafka_wait_port N: waits until node N accepts connections.
kafka_wait_port() {
  local n=$1 dir
  dir=$(kafka_dir "$n")
  if ! wait_for "kafka-$n" 120 port_open "$(kafka_port "$n")"; then
    tail -n 40 "$dir/logs/stdout.log" "$dir/logs/server.log" >&2 || true
    return 1
  fi
}

# kafka_brokers: the ids of the brokers the cluster reports as live (fenced
# brokers are left out), one per line; nothing when no broker answers.
kafka_brokers() {
  kafka_tool kafka.admin.ConfigCommand --bootstrap-server "$(kafka_bootstrap)" \
    --entity-type brokers --describe 2>/dev/null |
    sed -n 's/^Dynamic configs for broker \([0-9]*\) are:.*/\1/p' | sort -n || true
}

# kafka_wait_brokers IDS...: waits until every one of IDS is a live broker.
kafka_wait_brokers() {
  local deadline=$((SECONDS + 120)) live id missing
  while :; do
    live=" $(kafka_brokers | tr '\n' ' ')"
    missing=""
    for id in "$@"; do
      case "$live" in *" $id "*) ;; *) missing+=" $id" ;; esac
    done
    [ -z "$missing" ] && return 0
    if [ $SECONDS -ge $deadline ]; then
      log "kafka brokers not registered after 120s:$missing (live:${live% })"
      return 1
    fi
    sleep 1
  done
}

kafka_up() {
  local n
  kafka_fetch
  for n in "${CLUSTER_KAFKA_NODES[@]}"; do kafka_launch "$n"; done
}

kafka_wait_up() {
  local n
  for n in "${CLUSTER_KAFKA_NODES[@]}"; do kafka_wait_port "$n"; done
  log "waiting for ${#CLUSTER_KAFKA_NODES[@]} registered kafka brokers"
  kafka_wait_brokers "${CLUSTER_KAFKA_NODES[@]}"
  log "kafka cluster ready on $(kafka_bootstrap)"
}

# All nodes at once: one by one, the last node would wait for a controlled
# shutdown that a controller quorum of one cannot approve.
kafka_down() {
  local n pids=()
  for n in "${CLUSTER_KAFKA_NODES[@]}"; do
    stop_pid "kafka-$n" "$(kafka_pidfile "$n")" &
    pids+=($!)
  done
  wait "${pids[@]}"
}

kafka_status() {
  local n pidfile
  for n in "${CLUSTER_KAFKA_NODES[@]}"; do
    pidfile=$(kafka_pidfile "$n")
    if port_open "$(kafka_port "$n")"; then
      echo "kafka-$n: up (127.0.0.1:$(kafka_port "$n"), controller $(controller_port "$n"), pid $(cat "$pidfile" 2>/dev/null || echo '?'))"
    elif pid_alive "$pidfile"; then
      echo "kafka-$n: starting (pid $(cat "$pidfile"))"
    else
      echo "kafka-$n: down"
    fi
  done
  local live
  live=$(kafka_brokers | tr '\n' ' ')
  if [ -n "$live" ]; then
    echo "kafka-cluster: live brokers ${live% }"
  else
    echo "kafka-cluster: no broker answers"
  fi
}

kill_broker() {
  local n=$1 pid
  pid=$(broker_pid "$n") || return 1
  log "kill -9 kafka-$n (pid $pid)"
  kill -9 "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  rm -f "$(kafka_pidfile "$n")"
  echo "$pid"
}

# start_broker N: restarts node N, waits for its port and for the cluster to
# list it as a live broker; prints the seconds that took.
start_broker() {
  local n=$1 t0
  t0=$(now_us)
  kafka_fetch
  kafka_launch "$n"
  kafka_wait_port "$n"
  log "kafka-$n listening after $(since "$t0")s"
  kafka_wait_brokers "$n"
  log "kafka-$n registered"
  since "$t0"
}

broker_pid() {
  local n=$1 pidfile
  pidfile=$(kafka_pidfile "$n")
  if ! pid_alive "$pidfile"; then
    log "kafka-$n is not running"
    return 1
  fi
  cat "$pidfile"
}

# ---------------------------------------------------------------- Redis

redis_dir() { echo "$CLUSTER_DATA/redis-$1"; }

rcli() {
  local port=$1
  shift
  timeout 5 redis-cli -h 127.0.0.1 -p "$port" "$@"
}

redis_alive() { [ "$(rcli "$1" ping 2>/dev/null)" = PONG ]; }

# redis_info PORT FIELD: one field of CLUSTER INFO.
redis_info() {
  rcli "$1" cluster info 2>/dev/null | tr -d '\r' | sed -n "s/^$2://p"
}

redis_state_ok() { [ "$(redis_info "$1" cluster_state)" = ok ]; }

# redis_any: the port of the first node that answers.
redis_any() {
  local p
  for p in "${CLUSTER_REDIS_PORTS[@]}"; do
    if redis_alive "$p"; then
      echo "$p"
      return 0
    fi
  done
  log "no redis cluster node answers"
  return 1
}

redis_nodes() {
  local port=${1:-}
  [ -n "$port" ] || port=$(redis_any) || return 1
  rcli "$port" cluster nodes | tr -d '\r'
}

redis_launch() {
  local port=$1 dir
  dir=$(redis_dir "$port")
  if port_open "$port"; then
    log "redis-$port already listening"
    return 0
  fi
  mkdir -p "$dir"
  cat >"$dir/redis.conf" <<CONF
bind 127.0.0.1
port $port
protected-mode no
cluster-enabled yes
cluster-config-file $dir/nodes.conf
cluster-node-timeout 2000
# A replica (re)joining syncs at once rather than after the default 5 s.
repl-diskless-sync-delay 0
appendonly yes
appendfsync everysec
save ""
dir $dir
daemonize yes
pidfile $dir/redis.pid
logfile $dir/redis.log
CONF
  log "starting redis-$port"
  rm -f "$dir/killed"
  redis-server "$dir/redis.conf"
}

redis_wait_port() {
  local port=$1
  if ! wait_for "redis-$port" 30 redis_alive "$port"; then
    tail -n 20 "$(redis_dir "$port")/redis.log" >&2 || true
    return 1
  fi
}

redis_all_ok() {
  local p
  for p in "${CLUSTER_REDIS_PORTS[@]}"; do redis_state_ok "$p" || return 1; done
}

# redis_live_ok: cluster_state:ok on every node that answers.
redis_live_ok() {
  local p
  for p in "${CLUSTER_REDIS_PORTS[@]}"; do
    redis_alive "$p" || continue
    redis_state_ok "$p" || return 1
  done
}

redis_up() {
  local p
  "$STACK_SCRIPTS/redis.sh" install
  for p in "${CLUSTER_REDIS_PORTS[@]}"; do redis_launch "$p"; done
  for p in "${CLUSTER_REDIS_PORTS[@]}"; do redis_wait_port "$p"; done
  local assigned known formed=no fresh=yes
  for p in "${CLUSTER_REDIS_PORTS[@]}"; do
    assigned=$(redis_info "$p" cluster_slots_assigned)
    known=$(redis_info "$p" cluster_known_nodes)
    [ "$assigned" = 16384 ] && formed=yes
    { [ "$assigned" = 0 ] && [ "$known" = 1 ]; } || fresh=no
  done
  if [ $formed = no ]; then
    if [ $fresh = no ]; then
      log "the redis nodes are partly joined but no slots are assigned; run: $0 reset"
      return 1
    fi
    local addrs=()
    for p in "${CLUSTER_REDIS_PORTS[@]}"; do addrs+=("127.0.0.1:$p"); done
    log "creating the redis cluster (3 masters, 1 replica each)"
    redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes 2>&1 |
      sed 's/\x1b\[[0-9;]*m//g' >&2
  fi
  wait_for "redis cluster_state:ok on every node" 60 redis_all_ok
  log "redis cluster ready on 127.0.0.1:${CLUSTER_REDIS_PORTS[0]}-${CLUSTER_REDIS_PORTS[-1]}"
}

redis_down() {
  local p pids=()
  for p in "${CLUSTER_REDIS_PORTS[@]}"; do
    stop_pid "redis-$p" "$(redis_dir "$p")/redis.pid" &
    pids+=($!)
  done
  wait "${pids[@]}"
}

redis_status() {
  local p nodes line flags master mport
  for p in "${CLUSTER_REDIS_PORTS[@]}"; do
    if ! redis_alive "$p"; then
      echo "redis-$p: down"
      continue
    fi
    nodes=$(redis_nodes "$p")
    line=$(grep ' myself' <<<"$nodes")
    flags=$(awk '{print $3}' <<<"$line")
    case "$flags" in
      *master*)
        echo "redis-$p: up master slots $(cut -d' ' -f9- <<<"$line") ($(redis_info "$p" cluster_state))"
        ;;
      *)
        master=$(awk '{print $4}' <<<"$line")
        mport=$(awk -v id="$master" '$1 == id { split($2, a, "[:@]"); print a[2] }' <<<"$nodes")
        echo "redis-$p: up replica of ${mport:-?} ($(redis_info "$p" cluster_state))"
        ;;
    esac
  done
}

# master_of_slot SLOT: the port of the live master serving SLOT, as the first
# node that answers sees it (a node flagged fail or fail? does not count).
master_of_slot() {
  local slot=$1 port
  port=$(redis_nodes | awk -v s="$slot" '
    $3 ~ /master/ && $3 !~ /fail/ {
      for (i = 9; i <= NF; i++) {
        if ($i ~ /^\[/) continue
        n = split($i, r, "-")
        lo = r[1] + 0; hi = (n > 1 ? r[2] : r[1]) + 0
        if (s + 0 >= lo && s + 0 <= hi) { split($2, a, "[:@]"); print a[2]; exit }
      }
    }')
  if [ -z "$port" ]; then
    log "no live master serves slot $slot (a failover in progress?)"
    return 1
  fi
  echo "$port"
}

redis_pid() {
  local port=$1 pid pidfile
  pidfile=$(redis_dir "$port")/redis.pid
  pid=$(rcli "$port" info server 2>/dev/null | tr -d '\r' | sed -n 's/^process_id://p')
  [ -n "$pid" ] || { pid_alive "$pidfile" && pid=$(cat "$pidfile"); } || true
  if [ -z "$pid" ]; then
    log "redis-$port is not running"
    return 1
  fi
  echo "$pid"
}

# kill_redis PORT: kill -9, after noting when and which slot it served (its
# own as a master, its master's as a replica) for redis-failover-wait.
kill_redis() {
  local port=$1 pid line slot
  pid=$(redis_pid "$port") || return 1
  line=$(redis_nodes "$port" | grep ' myself')
  case "$(awk '{print $3}' <<<"$line")" in
    *master*) slot=$(awk '{print $9}' <<<"$line") ;;
    *)
      slot=$(redis_nodes "$port" | awk -v id="$(awk '{print $4}' <<<"$line")" '$1 == id {print $9}')
      ;;
  esac
  slot=${slot%%-*}
  log "kill -9 redis-$port (pid $pid)"
  kill -9 "$pid"
  printf 'killed_us=%s\nslot=%s\n' "$(now_us)" "$slot" >"$(redis_dir "$port")/killed"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  echo "$pid"
}

# redis_failover_wait PORT [TIMEOUT]: waits until a live node other than PORT
# is master of the slots PORT served and every live node says
# cluster_state:ok; prints that master's port and the seconds since the kill.
redis_failover_wait() {
  local port=$1 timeout=${2:-60} file t0 slot master
  file=$(redis_dir "$port")/killed
  t0=$(now_us)
  slot=""
  if [ -f "$file" ]; then
    t0=$(sed -n 's/^killed_us=//p' "$file")
    slot=$(sed -n 's/^slot=//p' "$file")
  fi
  if [ -z "$slot" ]; then
    # Not killed by kill-redis: the slots it still holds in the cluster's view.
    slot=$(redis_nodes | awk -v a="127.0.0.1:$port@" 'index($2, a) == 1 && $3 ~ /master/ {print $9}')
    slot=${slot%%-*}
  fi
  if [ -z "$slot" ]; then
    log "no slots known for redis-$port (kill it with: $0 kill-redis $port)"
    return 1
  fi
  local deadline=$((SECONDS + timeout))
  while :; do
    master=$(master_of_slot "$slot" 2>/dev/null) || master=""
    if [ -n "$master" ] && [ "$master" != "$port" ] && redis_alive "$master" && redis_live_ok; then
      break
    fi
    if [ $SECONDS -ge $deadline ]; then
      log "no failover of redis-$port's slots after ${timeout}s"
      return 1
    fi
    sleep 0.2
  done
  echo "$master $(since "$t0")"
}

# redis_converged PORT: PORT and another live node agree on PORT's role, it
# says cluster_state:ok and, as a replica, its link to its master is up.
redis_converged() {
  local port=$1 self peer p flags_self flags_peer
  redis_state_ok "$port" || return 1
  self=$(redis_nodes "$port" | grep ' myself') || return 1
  flags_self=$(awk '{print $3}' <<<"$self")
  for p in "${CLUSTER_REDIS_PORTS[@]}"; do
    [ "$p" != "$port" ] && redis_alive "$p" && { peer=$p; break; }
  done
  [ -n "${peer:-}" ] || return 0
  flags_peer=$(redis_nodes "$peer" | awk -v a="127.0.0.1:$port@" 'index($2, a) == 1 {print $3}')
  [[ "$flags_peer" != *fail* ]] || return 1
  case "$flags_self" in *master*) [[ "$flags_peer" == *master* ]] || return 1 ;; *) [[ "$flags_peer" == *slave* ]] || return 1 ;; esac
  case "$flags_self" in
    *slave*) rcli "$port" info replication | tr -d '\r' | grep -x 'master_link_status:up' >/dev/null ;;
  esac
}

# start_redis PORT: restarts a node (a former master rejoins as a replica of
# the node that took over); prints its role and the seconds until it is back.
start_redis() {
  local port=$1 t0 role
  t0=$(now_us)
  "$STACK_SCRIPTS/redis.sh" install
  redis_launch "$port"
  redis_wait_port "$port"
  wait_for "redis-$port rejoining the cluster" 60 redis_converged "$port"
  role=$(rcli "$port" role | head -n 1 | tr -d '\r')
  [ "$role" = slave ] && role=replica
  echo "$role $(since "$t0")"
}

# ---------------------------------------------------------------- verbs

up() {
  local t0
  t0=$(now_us)
  mkdir -p "$CLUSTER_DATA"
  kafka_tls_certs
  kafka_up
  redis_up
  kafka_wait_up
  # A cluster formatted before it had the SCRAM user gets it once.
  if [ "$(cat "$CLUSTER_DATA/scram-user" 2>/dev/null)" != "$(scram_marker)" ]; then
    kafka_tls_scram_user "$(kafka_bootstrap)"
    scram_marker >"$CLUSTER_DATA/scram-user"
  fi
  log "SASL_SSL on $(sasl_ssl_bootstrap)"
  log "cluster up after $(since "$t0")s"
}

down() {
  kafka_down
  redis_down
}

reset() {
  down
  log "removing $CLUSTER_DATA"
  rm -rf "$CLUSTER_DATA"
}

status() {
  kafka_status
  redis_status
}

# The fault verbs act only on this cluster's nodes, never on another redis
# or broker of the machine.
redis_port_arg() {
  local p
  for p in "${CLUSTER_REDIS_PORTS[@]}"; do [ "${1:-}" = "$p" ] && return 0; done
  log "not a cluster redis port: '${1:-}' (${CLUSTER_REDIS_PORTS[*]})"
  exit 2
}
node_arg() {
  local n
  for n in "${CLUSTER_KAFKA_NODES[@]}"; do [ "${1:-}" = "$n" ] && return 0; done
  log "not a cluster kafka node: '${1:-}' (${CLUSTER_KAFKA_NODES[*]})"
  exit 2
}
slot_arg() {
  [[ "${1:-}" =~ ^[0-9]+$ ]] && [ "$1" -lt 16384 ] && return 0
  log "not a slot: '${1:-}' (0-16383)"
  exit 2
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  reset) reset ;;
  redis-master-of-slot) slot_arg "${2:-}"; master_of_slot "$2" ;;
  kill-redis) redis_port_arg "${2:-}"; kill_redis "$2" ;;
  redis-failover-wait) redis_port_arg "${2:-}"; redis_failover_wait "$2" "${3:-60}" ;;
  start-redis) redis_port_arg "${2:-}"; start_redis "$2" ;;
  kill-broker) node_arg "${2:-}"; kill_broker "$2" ;;
  start-broker) node_arg "${2:-}"; start_broker "$2" ;;
  broker-pid) node_arg "${2:-}"; broker_pid "$2" ;;
  *) usage ;;
esac
