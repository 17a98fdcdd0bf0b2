# shellcheck shell=bash
# Lifecycle of a Deno stand-in process, shared by the up/down scripts of edge-runtime and api
# (sourced after local/lib.sh, never run). The component contract: pid in
# $HA_STACK_DIR/pids/<name>.pid, log in $HA_STACK_DIR/logs/<name>.log, started in its own session
# (setsid, so its pid is its process group), healthy when its health URL answers 2xx; stopping
# sends TERM to that pid, waits, then cleans up whatever is left of its process group.

component_pidfile() { printf '%s/pids/%s.pid' "$HA_STACK_DIR" "$1"; }
component_logfile() { printf '%s/logs/%s.log' "$HA_STACK_DIR" "$1"; }

# component_ours PID SCRIPT: true when PID is alive and is running SCRIPT.
component_ours() {
  [[ -n "$1" ]] && kill -0 "$1" 2>/dev/null &&
    tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$2"
}

component_healthy() { curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null; }

component_fail() { # NAME MESSAGE: log, show the log tail, exit 1
  ha_log "$1: $2"
  echo "--- last lines of $(component_logfile "$1")" >&2
  tail -n 30 "$(component_logfile "$1")" >&2 2>/dev/null || true
  exit 1
}

# component_up NAME SCRIPT HEALTH_URL WAIT_S [deno run flags…]
# Starts `deno run FLAGS SCRIPT` in the background unless it already runs and is healthy.
component_up() {
  local name=$1 script=$2 health=$3 wait_s=$4
  shift 4
  local pidfile logfile pid deno_bin
  pidfile="$(component_pidfile "$name")"
  logfile="$(component_logfile "$name")"
  mkdir -p "$(dirname "$pidfile")" "$(dirname "$logfile")"

  pid="$(cat "$pidfile" 2>/dev/null || true)"
  if component_ours "$pid" "$script"; then
    for _ in $(seq 1 "$wait_s"); do
      if component_healthy "$health"; then
        ha_log "$name: already running (pid $pid)"
        return 0
      fi
      component_ours "$pid" "$script" || break
      sleep 1
    done
    component_fail "$name" "pid $pid is running but not healthy at $health"
  fi
  rm -f "$pidfile"
  if component_healthy "$health"; then
    component_fail "$name" "$health already answers, but not from our pid file: not starting another"
  fi

  # The deno on PATH may be npm's node shim, which would not pass SIGTERM on: run the binary.
  deno_bin="$(deno eval 'console.log(Deno.execPath())')"
  # Detached: its own session, and no descriptor of ours beyond 0-2 (a caller's lock file, for one,
  # must not stay held by a process that runs for hours).
  (
    for fd in /proc/"$BASHPID"/fd/*; do
      fd="${fd##*/}"
      if ((fd > 2)); then eval "exec ${fd}>&-" 2>/dev/null || true; fi
    done
    exec setsid nohup "$deno_bin" run --quiet --no-prompt "$@" "$script" >>"$logfile" 2>&1 </dev/null
  ) &
  pid=$!
  echo "$pid" >"$pidfile"
  for _ in $(seq 1 $((wait_s * 5))); do
    if component_healthy "$health"; then
      ha_log "$name: running (pid $pid), healthy at $health"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$pidfile"
      component_fail "$name" "exited while starting"
    fi
    sleep 0.2
  done
  component_fail "$name" "not healthy after ${wait_s}s at $health (pid $pid still running: run down)"
}

# component_down NAME SCRIPT [WAIT_S]: TERM our pid, wait, then TERM/KILL what is left of its group.
component_down() {
  local name=$1 script=$2 wait_s=${3:-15}
  local pidfile pid
  pidfile="$(component_pidfile "$name")"
  pid="$(cat "$pidfile" 2>/dev/null || true)"
  if [[ -z "$pid" ]]; then
    ha_log "$name: not running"
    return 0
  fi
  if component_ours "$pid" "$script"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 $((wait_s * 10))); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 -- "-$pid" 2>/dev/null; then
      kill -TERM -- "-$pid" 2>/dev/null || true
      sleep 1
      kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    ha_log "$name: stopped (pid $pid)"
  else
    ha_log "$name: pid $pid is not running $script: removing the stale pid file"
  fi
  rm -f "$pidfile"
}
