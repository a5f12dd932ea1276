#!/usr/bin/env bash
# TLS and SASL for local Kafka brokers, so that the integration tests prove
# the secured connection path against a real broker: a private CA and
# certificates, the stockflow user's password, and the broker properties of
#   - a SASL_SSL listener taking PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 and
#     OAUTHBEARER (Kafka's unsecured JWT validation: an unsigned token with
#     sub and exp), and
#   - an SSL listener that requires a client certificate.
# Everything is generated once under $STACK_DATA/kafka-tls (git-ignored) and
# reused; tests read the files from there:
#   ca.crt                  the CA that signed everything below
#   broker.crt broker.key   the brokers' certificate (IP:127.0.0.1, DNS:localhost,
#                           so any local broker can use it); broker.pem is both,
#                           for Kafka's PEM key store
#   client.crt client.key   a client certificate (CN=stockflow)
#   client-expired.crt/.key a client certificate that expired in 2020
#   other-ca.crt            a CA that signed nothing here (the wrong-CA tests)
#   password                the password of user stockflow (PLAIN and SCRAM)
#
# Run:    kafka-tls.sh certs | scram-user BOOTSTRAP
# Source: kafka.sh and other broker scripts use the functions below:
#   kafka_tls_certs               make the files above if missing
#   kafka_tls_props NAME PORT     properties of SASL_SSL listener NAME on PORT
#   kafka_mtls_props NAME PORT    properties of SSL listener NAME on PORT, client
#                                 certificate required
#   kafka_tls_format_args         StorageTool format arguments creating the
#                                 SCRAM user with a new log dir
#   kafka_tls_scram_user BOOTSTRAP  create or reset the SCRAM user on a running
#                                 cluster (for log dirs formatted without it)
# A listener's properties do not add it to listeners, advertised.listeners
# and listener.security.protocol.map: the caller writes those, e.g.
#   listeners=...,NAME://127.0.0.1:PORT
#   listener.security.protocol.map=...,NAME:SASL_SSL   (kafka_mtls_props: NAME:SSL)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KAFKA_TLS_DIR=$STACK_DATA/kafka-tls
KAFKA_SASL_USER=stockflow

kafka_tls_certs() {
  local f missing=0
  for f in ca.crt broker.pem client.crt client.key client-expired.crt client-expired.key other-ca.crt password; do
    [ -s "$KAFKA_TLS_DIR/$f" ] || missing=1
  done
  [ "$missing" = 0 ] && return 0
  apt_install openssl openssl "to make the test certificates"
  log "generating a Kafka test CA, certificates and password in $KAFKA_TLS_DIR"
  rm -rf "$KAFKA_TLS_DIR"
  mkdir -p "$KAFKA_TLS_DIR"
  (
    cd "$KAFKA_TLS_DIR"
    umask 077
    local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1)
    openssl req -x509 -new -nodes "${ec[@]}" -keyout ca.key -out ca.crt -days 3650 \
      -subj "/CN=stockflow kafka test CA" 2>/dev/null
    # The broker's key is RSA in PKCS#8, which every Java's PEM key store reads.
    openssl req -new -nodes -newkey rsa:2048 -keyout broker.key -out broker.csr -subj "/CN=localhost" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >broker.ext
    openssl x509 -req -in broker.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
      -out broker.crt -days 3650 -extfile broker.ext 2>/dev/null
    cat broker.key broker.crt >broker.pem
    openssl req -new -nodes "${ec[@]}" -keyout client.key -out client.csr -subj "/CN=stockflow" 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' >client.ext
    openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
      -out client.crt -days 3650 -extfile client.ext 2>/dev/null
    # An expired client certificate: only `openssl ca` sets past dates.
    openssl req -new -nodes "${ec[@]}" -keyout client-expired.key -out client-expired.csr \
      -subj "/CN=stockflow-expired" 2>/dev/null
    mkdir expired-ca
    : >expired-ca/index.txt
    echo 1000 >expired-ca/serial
    cat >expired-ca/ca.cnf <<CNF
[ca]
default_ca = expired
[expired]
database = expired-ca/index.txt
new_certs_dir = expired-ca
serial = expired-ca/serial
default_md = sha256
policy = any
x509_extensions = client
unique_subject = no
[any]
commonName = supplied
[client]
basicConstraints = CA:FALSE
extendedKeyUsage = clientAuth
CNF
    openssl ca -batch -notext -config expired-ca/ca.cnf -cert ca.crt -keyfile ca.key \
      -in client-expired.csr -out client-expired.crt \
      -startdate 20200101000000Z -enddate 20200102000000Z 2>/dev/null
    # Another CA, unrelated to the brokers' certificate.
    openssl req -x509 -new -nodes "${ec[@]}" -keyout other-ca.key -out other-ca.crt -days 3650 \
      -subj "/CN=some other CA" 2>/dev/null
    rm -rf expired-ca other-ca.key ./*.csr ./*.ext
    openssl rand -hex 24 >password
  )
}

kafka_tls_password() { cat "$KAFKA_TLS_DIR/password"; }

# kafka_tls_ssl_props NAME: the key and trust stores of listener NAME.
kafka_tls_ssl_props() {
  local p="listener.name.$(echo "$1" | tr 'A-Z' 'a-z')"
  cat <<PROPS
$p.ssl.keystore.type=PEM
$p.ssl.keystore.location=$KAFKA_TLS_DIR/broker.pem
$p.ssl.truststore.type=PEM
$p.ssl.truststore.location=$KAFKA_TLS_DIR/ca.crt
PROPS
}

kafka_tls_props() {
  local name=$1 port=$2 p
  p="listener.name.$(echo "$name" | tr 'A-Z' 'a-z')"
  echo "# $name: SASL_SSL on 127.0.0.1:$port (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER)"
  kafka_tls_ssl_props "$name"
  cat <<PROPS
$p.ssl.client.auth=none
$p.sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512,OAUTHBEARER
$p.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$KAFKA_SASL_USER="$(kafka_tls_password)";
$p.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
$p.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
$p.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub="$KAFKA_SASL_USER";
PROPS
}

kafka_mtls_props() {
  local name=$1 port=$2
  echo "# $name: SSL on 127.0.0.1:$port, client certificate signed by ca.crt required"
  kafka_tls_ssl_props "$name"
  echo "listener.name.$(echo "$name" | tr 'A-Z' 'a-z').ssl.client.auth=required"
}

kafka_tls_format_args() {
  local pw
  pw=$(kafka_tls_password)
  echo "--add-scram SCRAM-SHA-256=[name=$KAFKA_SASL_USER,password=$pw]" \
    "--add-scram SCRAM-SHA-512=[name=$KAFKA_SASL_USER,password=$pw]"
}

kafka_tls_scram_user() {
  local bootstrap=$1 pw m
  pw=$(kafka_tls_password)
  log "setting SCRAM credentials of user $KAFKA_SASL_USER through $bootstrap"
  # One mechanism per request: the broker refuses two changes to one user's
  # credentials in the same request.
  for m in SCRAM-SHA-256 SCRAM-SHA-512; do
    java -Xmx256m -Dlog4j2.level=warn -cp "$STOCKFLOW_CACHE/kafka-$KAFKA_VERSION/libs/*" kafka.admin.ConfigCommand \
      --bootstrap-server "$bootstrap" --alter --entity-type users --entity-name "$KAFKA_SASL_USER" \
      --add-config "$m=[password=$pw]" >/dev/null
  done
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  case "${1:-certs}" in
    certs) kafka_tls_certs ;;
    scram-user) kafka_tls_certs; kafka_tls_scram_user "${2:-127.0.0.1:$KAFKA_PORT}" ;;
    *) echo "usage: $0 certs|scram-user [BOOTSTRAP]" >&2; exit 2 ;;
  esac
fi
