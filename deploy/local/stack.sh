#!/usr/bin/env bash
# The whole local stack: Kafka (KRaft; PLAINTEXT, and SASL_SSL and SSL
# listeners for the secured-connection tests), Redis (plain, and TLS with an
# ACL user for the secured-connection tests), Apicurio Registry (a real
# schema registry) and Jaeger on 127.0.0.1, and the headless chromium the
# console's browser tests use.
#   stack.sh up|down|status
set -euo pipefail
here=$(dirname "${BASH_SOURCE[0]}")
case "${1:-up}" in
  up)
    # The Jaeger build is the slow part on a new machine: run it beside the Kafka fetch.
    "$here/jaeger.sh" build & jb=$!
    "$here/redis.sh" start
    "$here/redis-tls.sh" start
    # The console's browser tests drive Debian's chromium (after redis.sh,
    # which may hold the package manager's lock).
    "$here/chromium.sh" install >/dev/null
    "$here/kafka.sh" start
    "$here/registry.sh" start
    wait $jb
    "$here/jaeger.sh" start
    ;;
  down)
    "$here/jaeger.sh" stop
    "$here/registry.sh" stop
    "$here/kafka.sh" stop
    "$here/redis-tls.sh" stop
    "$here/redis.sh" stop
    ;;
  status)
    "$here/kafka.sh" status
    "$here/registry.sh" status
    "$here/redis.sh" status
    "$here/redis-tls.sh" status
    "$here/jaeger.sh" status
    ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
