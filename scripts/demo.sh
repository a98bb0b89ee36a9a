#!/usr/bin/env bash
# The quickstart end to end on the local broker (make demo): apply the
# topology, run the quickstart's worker and producer, and show where every
# job went. It ends by itself: the worker exits once every job is done, and
# is stopped (and the demo fails) if that takes more than DEMO_TIMEOUT.
#   JOBS          jobs the producer publishes (default 3000)
#   DEMO_TIMEOUT  seconds the worker may take (default 120)
#   DEMO_HTTP_ADDR  where the worker serves /livez, /readyz and /metrics
#                 (default 127.0.0.1:0, a free port, so that nothing else on
#                 :8080 gets in the way)
#   DEMO_NAMESPACE  prefix of the demo's exchange and queues (default demo.),
#                 so that it touches nothing of anyone else's on the broker
#   DEMO_PURGE    yes: empty the demo's queues first without asking, even on
#                 a broker that is not this machine; no: never empty them.
#                 Default: empty them on a local broker (127.0.0.1,
#                 localhost, ::1), ask on a terminal elsewhere, else skip.
#
# What it changes on the broker (README.md, "make demo"): it declares the
# exchange demo.jobs, the queues demo.default and demo.reports with their
# dead-letter queues demo.default.dlq and demo.reports.dlq, the bindings,
# the queue demo.scheduler whose token elects the worker that fires the
# schedule demo.stats-rollup,
# and warren's shared entities (the exchange warren.dead-letter and the
# delay cascade warren.delay.*); it empties the demo's four queues (see
# DEMO_PURGE) and publishes jobs to them. It enables no plugin and deletes
# nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
ns=${DEMO_NAMESPACE-demo.}
if [[ ! $ns =~ ^[A-Za-z0-9._-]*$ ]]; then
  echo "demo: DEMO_NAMESPACE=$ns: use letters, digits, '.', '_' and '-' only" >&2
  exit 2
fi
jobs=${JOBS:-3000}
timeout_s=${DEMO_TIMEOUT:-120}
url=${WARREN_URL:-${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/}}
# The programs read WARREN_URL; AMQP_URL (what the Makefile and the tests
# set) is a deprecated name to them, which they would warn about.
export WARREN_URL=$url

section() { printf '\n== %s\n' "$*"; }

rest=${url#*://}
host=${rest##*@}
host=${host%%/*}
if [[ $host == \[* ]]; then host=${host%%]*}; host=${host#[}; else host=${host%:*}; fi
is_local() { [ "$host" = "127.0.0.1" ] || [ "$host" = "localhost" ] || [ "$host" = "::1" ]; }

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# The quickstart's topology with every name of its own under the namespace
# (warren.* names are warren's, shared by every topology, and stay).
topo=$out/topology.yaml
sed -E \
  -e "s/^(  )(jobs|default|reports|stats-rollup):/\\1${ns}\\2:/" \
  -e "s/(exchange: )jobs\\b/\\1${ns}jobs/" \
  -e "s/(queue: )(default|reports)\\b/\\1${ns}\\2/" \
  examples/quickstart/topology.yaml >"$topo"

# purge empties queues through the management API (scripts/rabbitmq.sh
# enables it on a local broker), with the credentials and host of
# WARREN_URL: the CLI cannot purge yet. A failure is reported, not fatal:
# the counts would then include what earlier runs left. On a broker that is
# not this machine it asks first (see DEMO_PURGE).
purge() {
  local creds=guest:guest answer
  [[ $rest == *@* ]] && creds=${rest%%@*}
  case ${DEMO_PURGE:-} in
  no)
    echo "not emptied (DEMO_PURGE=no): the counts below include what earlier runs left"
    return 0
    ;;
  yes) ;;
  *)
    if ! is_local; then
      if [ -t 0 ] && [ -t 1 ]; then
        read -r -p "empty $* on $host, which is not this machine? [y/N] " answer || answer=
      else
        answer=
      fi
      if [[ $answer != [yY]* ]]; then
        echo "not emptied: $host is not this machine (DEMO_PURGE=yes empties them); the counts below include what earlier runs left"
        return 0
      fi
    fi
    ;;
  esac
  local h=$host
  [[ $h == *:* ]] && h="[$h]"
  local api="http://$h:${MANAGEMENT_PORT:-15672}/api/queues/%2F"
  for q in "$@"; do
    if curl -fsS -o /dev/null -u "$creds" -X DELETE "$api/$q/contents"; then
      echo "$q: emptied"
    else
      echo "$q: could not empty it (is the management plugin enabled? scripts/rabbitmq.sh enables it)"
    fi
  done
}

section "build bin/warren, bin/quickstart-producer, bin/quickstart-worker"
go build -o bin/warren ./cmd/warren
go build -o bin/quickstart-producer ./examples/quickstart/producer
go build -o bin/quickstart-worker ./examples/quickstart/worker
echo ok

section "validate examples/quickstart/topology.yaml, its names prefixed with $ns"
bin/warren topology validate -f "$topo"

section "apply it"
bin/warren topology apply -f "$topo"

section "empty the demo's queues and dead-letter queues, in case an earlier run left jobs"
purge "${ns}default" "${ns}reports" "${ns}default.dlq" "${ns}reports.dlq"

section "publish one job with the CLI"
bin/warren publish -f "$topo" --type email.send --data '{"to":"ada@example.com","subject":"Hello from the CLI"}'

until=$((jobs + 1))
section "run the worker (until $until jobs are done) and the producer ($jobs jobs)"
# The worker consumes while the producer publishes. On a terminal its
# progress line shows here; both programs' reports are printed once both
# are done, so that they do not mix.
timeout -k 10 "$timeout_s" bin/quickstart-worker -f "$topo" --until "$until" --lease-queue "${ns}scheduler" --http-addr "${DEMO_HTTP_ADDR:-127.0.0.1:0}" >"$out/worker" &
worker=$!
producer_status=0
bin/quickstart-producer -f "$topo" --jobs "$jobs" >"$out/producer" || producer_status=$?
if [ "$producer_status" != 0 ]; then
  kill -TERM "$worker" 2>/dev/null || true
fi
worker_status=0
wait "$worker" || worker_status=$?

section "producer"
cat "$out/producer"
section "worker"
cat "$out/worker"
if [ "$producer_status" != 0 ]; then
  echo "demo: the producer failed (exit $producer_status)" >&2
  exit 1
fi
if [ "$worker_status" = 124 ]; then
  echo "demo: the worker did not finish $until jobs within ${timeout_s}s (DEMO_TIMEOUT); it was stopped" >&2
  exit 1
fi
if [ "$worker_status" != 0 ]; then
  echo "demo: the worker failed (exit $worker_status)" >&2
  exit 1
fi

section "a job type without a route is refused, not lost"
if bin/warren publish -f "$topo" --type no.such.type 2>&1; then echo "unexpected success"; exit 1; fi
