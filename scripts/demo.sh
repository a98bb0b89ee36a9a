#!/usr/bin/env bash
# The quickstart end to end on the local broker: apply the topology, publish
# jobs through the topology's routes, and show where they landed.
set -euo pipefail
cd "$(dirname "$0")/.."
warren=bin/warren
topo=examples/quickstart/topology.yaml
[ -x "$warren" ] || go build -o "$warren" ./cmd/warren

echo "== validate $topo"
"$warren" topology validate -f "$topo"
echo
echo "== apply $topo"
"$warren" topology apply -f "$topo"
echo
echo "== publish jobs (each confirmed by the broker)"
"$warren" publish -f "$topo" --type email.send --data '{"to":"ada@example.com","subject":"Welcome"}' --count 500
"$warren" publish -f "$topo" --type image.resize --data '{"url":"https://example.com/cat.png","width":128}' --count 200
"$warren" publish -f "$topo" --type report.render --data '{"report":"monthly","month":"2026-11"}' --count 50
echo
echo "== a job type without a route is refused, not lost"
if "$warren" publish -f "$topo" --type no.such.type 2>&1; then echo "unexpected success"; exit 1; fi
