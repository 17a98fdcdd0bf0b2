# shellcheck shell=bash
# Shared settings for the local scripts (sourced, never run). State stays in the checkout (or in
# /var/tmp, see below) and on 127.0.0.1; nothing here names a registry host or holds a secret.
set -euo pipefail

HA_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export HA_ROOT
# One stack = one folder of state and one block of ports. The demo uses the defaults (Supabase's own
# local ports); the test run uses its own folder and block so both can run side by side.
# State goes beside the code, unless other users cannot reach the checkout (a clone under /root):
# Postgres runs as `postgres` and the CloudPanel stand-in has non-root SSH users, so the state
# then goes to a folder of its own under /var/tmp.
if runuser -u nobody -- test -x "$HA_ROOT" 2>/dev/null; then
  HA_STATE_HOME="$HA_ROOT"
else
  HA_STATE_HOME="/var/tmp/hosting-automator-$(printf '%s' "$HA_ROOT" | sha256sum | cut -c1-12)"
  mkdir -p "$HA_STATE_HOME"
  chmod 0711 "$HA_STATE_HOME"
fi
export HA_STATE_HOME
export HA_STACK_DIR="${HA_STACK_DIR:-$HA_STATE_HOME/.stack}"
export HA_PORT_BASE="${HA_PORT_BASE:-54320}"
export HA_API_PORT=$((HA_PORT_BASE + 1))      # gateway stand-in: /rest/v1/rpc, /functions/v1
export HA_DB_PORT=$((HA_PORT_BASE + 2))       # PostgreSQL 15
export HA_SSH_PORT=$((HA_PORT_BASE + 5))      # OpenSSH with the clpctl stand-in (CloudPanel stand-in)
export HA_MATOMO_PORT=$((HA_PORT_BASE + 6))   # Matomo stand-in
export HA_EDGE_PORT=$((HA_PORT_BASE + 7))     # edge-runtime stand-in serving supabase/functions/*
export HA_DNS_PORT=$((HA_PORT_BASE + 8))      # DNS-over-HTTPS stand-in (the DNS check's resolver)
# The second CloudPanel stand-in, "server B", on an odd port on purpose (the bases are even):
# these ports lie in Linux's ephemeral range, where connect() takes even source ports first, so a
# client polling an even port that nothing listens on yet may be connected to itself (an ssh
# client doing so hangs after the banner exchange).
export HA_SSH_B_PORT=$((HA_PORT_BASE + 3))

# Deno is pinned as its native binary package (tools/package.json), and HA_DENO is the one way to
# reach it: the `deno` npm wrapper's lock leaves out its other platforms' optional packages, which
# makes `npm ci` refuse it, and its .bin shim runs the binary as a child of Node (so a recorded pid
# would name Node, not the server we started).
export HA_DENO="$HA_ROOT/tools/node_modules/@deno/linux-x64-glibc/deno"
export PATH="${HA_DENO%/*}:$HA_ROOT/tools/node_modules/.bin:$PATH"
NPM_CONFIG_REGISTRY="$(npm config get registry 2>/dev/null || true)"
export NPM_CONFIG_REGISTRY
# Deno 2.1.4 trusts only its bundled roots unless told; some networks re-sign TLS with a system CA.
export DENO_TLS_CA_STORE="${DENO_TLS_CA_STORE:-system,mozilla}"
export RUST_BACKTRACE=0 NO_COLOR=1

ha_log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# shellcheck source=local/supervisor.sh
source "$HA_ROOT/local/supervisor.sh"
