# shellcheck shell=bash
# The one process supervisor of local/ (sourced by lib.sh): the pg_net worker and every stand-in
# are started, checked and stopped here. Component NAME: $HA_STACK_DIR/pids/NAME.pid holds
# "PID START_TIME" (a recycled pid is never taken for ours), its output goes to
# $HA_STACK_DIR/logs/NAME.log. Only processes recorded here are ever signalled.

sv_pidfile() { printf '%s/pids/%s.pid' "$HA_STACK_DIR" "$1"; }
sv_logfile() { printf '%s/logs/%s.log' "$HA_STACK_DIR" "$1"; }

# sv_start_time PID: the process's start time (field 22 of /proc/PID/stat); fails if it is gone
# or a zombie waiting to be reaped.
sv_start_time() {
  local stat fields
  [[ $1 =~ ^[0-9]+$ ]] && stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  read -r -a fields <<<"${stat##*) }"
  [[ ${fields[0]} != Z ]] && printf '%s\n' "${fields[19]}"
}

# sv_group_alive PGID: a process of that group still runs (zombies waiting to be reaped do not count).
sv_group_alive() { ps -e -o pgid=,stat= | awk -v g="$1" '$1 == g && $2 !~ /^Z/ { f = 1 } END { exit !f }'; }

sv_record() { # NAME PID
  local start
  start="$(sv_start_time "$2")" || return 1
  printf '%s %s\n' "$2" "$start" >"$(sv_pidfile "$1")"
}

# sv_pid NAME: prints the recorded pid while that very process runs; fails otherwise.
sv_pid() {
  local pid start
  read -r pid start 2>/dev/null <"$(sv_pidfile "$1")" || return 1
  [[ $pid =~ ^[0-9]+$ && -n $start && "$(sv_start_time "$pid")" == "$start" ]] &&
    printf '%s\n' "$pid"
}

sv_fail() { # NAME MESSAGE: logs it with the tail of the component's log, exits 1
  local log
  log="$(sv_logfile "$1")"
  ha_log "$1: $2"
  if [[ -s $log ]]; then
    printf -- '--- last lines of %s\n' "$log" >&2
    tail -n 30 "$log" >&2
    echo --- >&2
  fi
  exit 1
}

sv_http_ok() { curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null; } # URL [PID]: a health command

# sv_healthy NAME PID DEADLINE_S HEALTH: runs `HEALTH… PID` every 0.2 s until it succeeds (0),
# PID exits (1) or DEADLINE_S pass (2).
sv_healthy() {
  local -a health
  read -r -a health <<<"$4"
  local until=$((SECONDS + $3))
  while true; do
    "${health[@]}" "$2" && return 0
    sv_start_time "$2" >/dev/null || return 1
    ((SECONDS < until)) || return 2
    sleep 0.2
  done
}

# sv_start NAME DEADLINE_S HEALTH -- COMMAND…: unless NAME already runs healthy, starts COMMAND
# in a session of its own (its pid is its process group) with no descriptor of ours beyond 0-2
# (a caller's lock must not stay held for hours), records it and waits for HEALTH (a command and
# its first words, given the pid last) for up to DEADLINE_S seconds.
sv_start() {
  local name=$1 deadline=$2 health=$3 pid status=0
  shift 3
  [[ ${1:-} == -- ]] && shift
  mkdir -p "$HA_STACK_DIR/pids" "$HA_STACK_DIR/logs"
  if pid="$(sv_pid "$name")"; then
    if sv_healthy "$name" "$pid" "$deadline" "$health"; then
      ha_log "$name: already running (pid $pid)"
      return 0
    fi
    ha_log "$name: pid $pid is not healthy: restarting it"
    sv_stop "$name"
  fi
  rm -f "$(sv_pidfile "$name")"
  if sv_healthy "$name" "" 0 "$health" 2>/dev/null; then
    sv_fail "$name" "something else already answers its health check: not starting another"
  fi
  (
    for fd in /proc/"$BASHPID"/fd/*; do
      fd="${fd##*/}"
      if ((fd > 2)); then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
    exec setsid "$@" >>"$(sv_logfile "$name")" 2>&1 </dev/null
  ) &
  pid=$!
  sv_record "$name" "$pid" || sv_fail "$name" "exited at once"
  sv_healthy "$name" "$pid" "$deadline" "$health" || status=$?
  case $status in
    0) ha_log "$name: up (pid $pid)" ;;
    1) sv_fail "$name" "exited while starting" ;;
    *)
      sv_stop "$name"
      sv_fail "$name" "not healthy after $deadline s"
      ;;
  esac
}

# sv_stop NAME [GRACE_S]: TERM to the recorded pid, up to GRACE_S (default 15) seconds for it to
# end, then KILL to it and to whatever is left of its process group.
sv_stop() {
  local name=$1 grace=${2:-15} pid start pidfile
  pidfile="$(sv_pidfile "$name")"
  if ! pid="$(sv_pid "$name")"; then
    if [[ -f $pidfile ]]; then ha_log "$name: not running (stale pid file)"; fi
    rm -f "$pidfile"
    return 0
  fi
  start="$(sv_start_time "$pid")"
  ha_log "$name: stopping (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  local until=$((SECONDS + grace))
  while [[ "$(sv_start_time "$pid")" == "$start" ]] && ((SECONDS < until)); do sleep 0.1; done
  if [[ "$(sv_start_time "$pid")" == "$start" ]]; then
    ha_log "$name: still running after $grace s: killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  # The group outlives its leader while a member runs, and its id is not reused meanwhile.
  kill -KILL -- "-$pid" 2>/dev/null || true
  until=$((SECONDS + 2))
  while sv_group_alive "$pid" && ((SECONDS < until)); do sleep 0.1; done
  rm -f "$pidfile"
}
