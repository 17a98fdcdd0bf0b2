# shellcheck shell=bash
# Which CloudPanel stand-in `up` and `down` act on (sourced, after lib.sh, with their arguments):
# none or `a` is server A, as when there was one; `b` is server B, a second server of its own.
# Sets instance (a|b), suffix ('' or -b), name (supervisor name: pid file, log, state folder and
# env file), port and state.
case "${1:-a}" in
  a) instance=a suffix='' port=$HA_SSH_PORT ;;
  b) instance=b suffix=-b port=$HA_SSH_B_PORT ;;
  *)
    echo "usage: ${0##*/} [a|b]   (a: server A, the default; b: server B)" >&2
    exit 2
    ;;
esac
name="cloudpanel$suffix"
state="$HA_STACK_DIR/$name"
