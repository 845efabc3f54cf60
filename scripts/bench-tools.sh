#!/usr/bin/env bash
# Install the benchmark's reference server and load generator when missing.
set -euo pipefail
need=()
command -v nginx >/dev/null 2>&1 || need+=(nginx)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
if [ ${#need[@]} -gt 0 ]; then
  echo "bench: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # Debian starts nginx on :80 after install; the benchmark runs its own.
  (systemctl stop nginx 2>/dev/null || nginx -s stop 2>/dev/null || true) >/dev/null 2>&1
fi
