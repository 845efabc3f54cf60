#!/usr/bin/env bash
# Make sure what the tests need is there, then run "$@" with VIGIE_TEST_REDIS set.
# - promtool (Debian package `prometheus`) and chromium (Debian package `chromium`, driven by
#   Playwright), installed with apt-get when missing;
# - Redis: the machine's server on 127.0.0.1:6379 (DB 14) if it answers, else a
#   throwaway redis-server (Debian package `redis-server`) on a free port, stopped after.
set -euo pipefail

need_apt=()
{ command -v promtool && [ -x /usr/bin/prometheus ]; } >/dev/null 2>&1 || need_apt+=(prometheus)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)  # the register page is tested in a browser
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test-services: installing ${need_apt[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
    # The Debian package may start its own daemons; the tests start what they need.
    if [[ " ${need_apt[*]} " == *" prometheus "* ]]; then
      (systemctl stop prometheus 2>/dev/null || pkill -x prometheus || true) >/dev/null 2>&1
    fi
  else
    echo "test-services: missing ${need_apt[*]} and cannot apt-get (not root)" >&2
    [ -n "${CI:-}" ] && exit 1
  fi
fi

throwaway_pid=""
cleanup() { [ -n "$throwaway_pid" ] && kill "$throwaway_pid" 2>/dev/null || true; }
trap cleanup EXIT

if [ -z "${VIGIE_TEST_REDIS:-}" ]; then
  if command -v redis-cli >/dev/null 2>&1 && redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; then
    export VIGIE_TEST_REDIS="redis://127.0.0.1:6379/14"
  else
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
      >/tmp/vigie-test-redis.log 2>&1 &
    throwaway_pid=$!
    for _ in $(seq 50); do
      redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && break
      sleep 0.1
    done
    export VIGIE_TEST_REDIS="redis://127.0.0.1:$port/0"
  fi
fi
echo "test-services: Redis at $VIGIE_TEST_REDIS; promtool: $(command -v promtool || echo missing)"
"$@"
