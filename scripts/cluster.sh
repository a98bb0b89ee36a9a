#!/usr/bin/env bash
# A three-node RabbitMQ cluster on this machine, for tests of quorum queues
# and of clients that move between nodes: the private nodes c1, c2, c3 of
# scripts/node.sh (Erlang nodes warren-c1@localhost, ...) on AMQP ports
# 5701-5703 and distribution ports 25701-25703, joined into one cluster.
# The shared broker on port 5672 is never touched.
#
# Usage:
#   scripts/cluster.sh start    start the nodes (or check them), join c2 and
#                               c3 to c1, print the three AMQP URLs, one a line
#   scripts/cluster.sh stop     kill the nodes and delete their data
#   scripts/cluster.sh status   each node's state and the cluster's members
#
# CLUSTER_PORT (default 5700): the nodes use CLUSTER_PORT+1, +2, +3.
# CLUSTER_MANAGEMENT=1: the management plugin on 15701-15703 (CLUSTER_PORT+10001...).
# CLUSTER_DLX_CONFIRM_TIMEOUT (milliseconds, default 5000): the nodes'
# dead_letter_worker_publisher_confirm_timeout, in their advanced.config
# (rabbitmq.conf has no key for it). RabbitMQ's own default, 180000, can
# hold a retry in the delay cascade for three minutes after a quorum
# leader fails over; see docs/reliability.md. Set at a node's first start.
# Faults on one node: scripts/node.sh kill c2, scripts/node.sh start c2 (it
# rejoins), scripts/node.sh ctl c1 list_queues name leader members.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
node_sh="$here/node.sh"
size=3
base_port="${CLUSTER_PORT:-5700}"
confirm_timeout="${CLUSTER_DLX_CONFIRM_TIMEOUT:-5000}"
[[ "$confirm_timeout" =~ ^[1-9][0-9]*$ ]] || { echo "cluster.sh: CLUSTER_DLX_CONFIRM_TIMEOUT=$confirm_timeout: want milliseconds, e.g. 5000" >&2; exit 2; }
export ADVANCED_CONFIG="{rabbit, [{dead_letter_worker_publisher_confirm_timeout, $confirm_timeout}]}"

say() { printf 'cluster.sh: %s\n' "$*" >&2; }

names() { local i; for ((i = 1; i <= size; i++)); do echo "c$i"; done; }

# members prints the nodes of c1's cluster, from the field of
# `rabbitmqctl cluster_status --formatter json` given (disk_nodes: every
# member; running_nodes: those up).
members() {
  "$node_sh" ctl c1 --quiet cluster_status --formatter json 2>/dev/null |
    grep -o "\"$1\":\[[^]]*\]" | grep -o 'warren-[a-z0-9_-]*@[a-z0-9.-]*' || true
}

start() {
  local began=$SECONDS i name pids=() failed=0
  # In parallel: each start is mostly a VM booting. A node of an existing
  # cluster waits for the others at boot, so they must come up together.
  for ((i = 1; i <= size; i++)); do
    name="c$i"
    if [ "${CLUSTER_MANAGEMENT:-}" = 1 ]; then
      MGMT_PORT=$((base_port + 10000 + i)) "$node_sh" start "$name" $((base_port + i)) >/dev/null &
    else
      "$node_sh" start "$name" $((base_port + i)) >/dev/null &
    fi
    pids+=($!)
  done
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || { say "node c$((i + 1)) did not start"; failed=1; }
  done
  [ "$failed" = 0 ] || exit 1

  local joined step out
  joined=$(members disk_nodes)
  for name in $(names | tail -n +2); do
    if grep -qx "warren-$name@localhost" <<<"$joined"; then
      continue
    fi
    say "joining $name to c1"
    # join_cluster also prints harmless errors about connection-tracking
    # tables of the stopped node: show the output only on failure.
    for step in stop_app "join_cluster warren-c1@localhost" start_app; do
      # shellcheck disable=SC2086 # step is a command and its argument
      out=$("$node_sh" ctl "$name" --quiet $step 2>&1) || { say "$name: rabbitmqctl $step failed:"; echo "$out" >&2; exit 1; }
    done
  done

  local running
  running=$(members running_nodes | wc -l)
  if [ "$running" != "$size" ]; then
    say "only $running of $size nodes run in c1's cluster:"
    "$node_sh" ctl c1 cluster_status >&2 || true
    exit 1
  fi
  say "cluster of $size nodes ready in $((SECONDS - began))s"
  for name in $(names); do "$node_sh" url "$name"; done
}

stop() {
  local name
  # Their data goes too, so there is nothing to stop gracefully.
  for name in $(names); do "$node_sh" rm "$name"; done
}

status() {
  local name rc=0
  for name in $(names); do "$node_sh" status "$name" || rc=3; done
  if "$node_sh" status c1 >/dev/null 2>&1; then
    echo "members: $(members disk_nodes | tr '\n' ' ')"
    echo "running: $(members running_nodes | tr '\n' ' ')"
  fi
  return "$rc"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
