#!/usr/bin/env bash
# Every drill scenario, N runs each (default 10), under the spec's own defaults, then the table
# of docs/drills.md. The TTL-bound paths (--no-fencing) run 5/3/3 times. Takes about an hour
# on 2 vCPUs; run it on an otherwise idle machine.
#
#   benchmarks/drill_campaign.sh [-c hastack.yaml] [-n 10] [-o results/]
set -uo pipefail
spec=hastack.yaml; repeat=10; out=drill-results
while getopts "c:n:o:" opt; do
  case $opt in c) spec=$OPTARG;; n) repeat=$OPTARG;; o) out=$OPTARG;; *) exit 2;; esac
done
hastack=${HASTACK:-hastack}
mkdir -p "$out"
names=$("$hastack" drill list --json | python3 -c "import json,sys; print(' '.join(d['name'] for d in json.load(sys.stdin)))")
run() {  # file, then the drill's arguments
  local file=$1; shift
  local start=$SECONDS
  "$hastack" -c "$spec" drill run "$@" --json > "$out/$file.json" 2> "$out/$file.log"
  echo "$(date -u +%FT%TZ) $file: exit $? in $((SECONDS - start)) s"
}
echo "campaign: $repeat runs of each scenario, spec $spec, results in $out"
for name in $names; do
  run "$name" "$name" --repeat "$repeat"
done
run node-loss-no-fencing node-loss --repeat 5 --no-fencing
run freeze-primary-no-fencing freeze-primary --repeat 3 --no-fencing
run partition-primary-no-fencing partition-primary --repeat 3 --no-fencing
python3 "$(dirname "$0")/drill_table.py" "$out"/*.json
