#!/usr/bin/env bash
# Debian's chromium, headless, for the console's browser tests.
#   chromium.sh install|path
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

find_chromium() {
  for c in chromium chromium-browser google-chrome; do
    if command -v "$c" >/dev/null; then command -v "$c"; return 0; fi
  done
  return 1
}

install() {
  if find_chromium >/dev/null; then return 0; fi
  log "installing chromium from Debian packages (for the console's browser tests)"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq >/dev/null
  $sudo apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
  find_chromium >/dev/null || { log "chromium did not install"; exit 1; }
}

case "${1:-install}" in
  install) install; find_chromium ;;
  path) find_chromium ;;
  *) echo "usage: $0 install|path" >&2; exit 2 ;;
esac
