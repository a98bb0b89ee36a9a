#!/usr/bin/env bash
# The measurements behind docs/benchmarks.md, reproducible: each section runs
# `warren bench --baseline` with interleaved rounds and writes its JSON report
# and its table to OUT (default bench-results/<UTC date>-<commit>/).
#
#   scripts/bench.sh [SECTION...]
#
# Sections (default: jobs rpc scaling):
#   jobs      50,000 jobs, classic and quorum, ROUNDS rounds (default 5)
#   rpc       20,000 calls with 1 and 16 callers: warren's Caller with its
#             reply queue (the default) and (rpc-direct) over direct reply-to
#   scaling   1, 2 and 4 consumer processes on one queue; 1 KiB, 64 KiB and
#             1 MiB payloads; 10 queues at once (SCALE_ROUNDS rounds, default 3)
#   rabbitmq4 jobs and both rpc reply paths against a private RabbitMQ 4.3
#             node (scripts/rabbitmq4.sh test-node 4.3), ROUNDS rounds
#   wire      a diagnostic: jobs and rpc with the baselines sending what
#             warren sends (--baseline-wire), so the ratios compare the
#             code alone (not among the defaults)
#
# The broker and the machine should be otherwise idle: every run uses the
# whole machine. WARREN_URL (or --url's default) picks the broker of every
# section but rabbitmq4.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${ROUNDS:-5}
scale_rounds=${SCALE_ROUNDS:-3}
commit=$(git rev-parse --short HEAD)
out=${OUT:-bench-results/$(date -u +%Y-%m-%d)-$commit}
mkdir -p "$out"
bin=$out/warren
go build -o "$bin" ./cmd/warren

say() { printf 'bench.sh: %s\n' "$*" >&2; }

# run NAME ARGS...: one report, as JSON and as the table.
run() {
	local name=$1
	shift
	say "$name: warren bench --baseline $*"
	"$bin" bench --baseline --json "$@" >"$out/$name.json"
	"$bin" bench --table "$out/$name.json" >"$out/$name.txt"
	cat "$out/$name.txt"
}

jobs() {
	run jobs --queue-type both --rounds "$rounds"
}

rpc() {
	run rpc --mode rpc --callers 1,16 --rounds "$rounds"
	run rpc-direct --mode rpc --callers 1,16 --rounds "$rounds" --direct-reply-to
}

scaling() {
	for w in 1 2 4; do
		run "workers-$w" --workers "$w" --rounds "$scale_rounds"
	done
	run payload-1k --payload-bytes 1024 --rounds "$scale_rounds"
	run payload-64k --payload-bytes 65536 --jobs 5000 --rounds "$scale_rounds"
	run payload-1m --payload-bytes 1048576 --jobs 500 --rounds "$scale_rounds"
	run queues-10 --queues 10 --rounds "$scale_rounds"
}

rabbitmq4() {
	local exports
	exports=$(scripts/rabbitmq4.sh test-node 4.3)
	eval "$exports"
	WARREN_URL=$AMQP_URL run rmq43-jobs --queue-type both --rounds "$rounds"
	WARREN_URL=$AMQP_URL run rmq43-rpc --mode rpc --callers 1,16 --rounds "$rounds"
	WARREN_URL=$AMQP_URL run rmq43-rpc-direct --mode rpc --callers 1,16 --rounds "$rounds" --direct-reply-to
}

wire() {
	run jobs-props --queue-type both --rounds "$rounds" --baseline-wire props
	run rpc-wire --mode rpc --callers 1,16 --rounds "$rounds" --baseline-wire warren
}

sections=("$@")
[ ${#sections[@]} -gt 0 ] || sections=(jobs rpc scaling)
for s in "${sections[@]}"; do
	case $s in
	jobs | rpc | scaling | rabbitmq4 | wire) "$s" ;;
	*)
		say "unknown section $s: want jobs, rpc, scaling, rabbitmq4 or wire"
		exit 2
		;;
	esac
done
say "reports in $out"
