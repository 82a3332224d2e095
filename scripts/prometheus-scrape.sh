#!/usr/bin/env bash
# A real Prometheus server scrapes a p2pmon node on loopback for a few seconds,
# then its HTTP API is asked for `up` and `p2pmon_peer_up`. Not in CI (it
# starts a server); run it by hand:  scripts/prometheus-scrape.sh
# Needs Debian's prometheus package (apt-get install prometheus; its service
# is not started here). Everything stays on 127.55.0.0/16 and stops by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=target/release/p2pmon
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

"$bin" --listen 127.55.0.1 --peers 127.55.0.2 --interval 1s --http 127.55.0.1:5080 >"$work/a.out" 2>"$work/a.err" & pids+=($!)
"$bin" --listen 127.55.0.2 --peers 127.55.0.1 --interval 1s --http off >"$work/b.out" 2>"$work/b.err" & pids+=($!)

cat >"$work/prometheus.yml" <<YML
global: { scrape_interval: 1s, evaluation_interval: 1s }
scrape_configs:
  - job_name: p2pmon
    static_configs: [ { targets: ["127.55.0.1:5080"] } ]
YML
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/data" \
    --web.listen-address=127.55.0.9:9090 >"$work/prom.log" 2>&1 & pids+=($!)

query() { curl -s --max-time 2 "http://127.55.0.9:9090/api/v1/query" --data-urlencode "query=$1"; }
for _ in $(seq 1 40); do
    if query 'p2pmon_peer_up' 2>/dev/null | grep -q '"value"'; then break; fi
    sleep 0.5
done
echo "up:              $(query 'up{job="p2pmon"}')"
echo "p2pmon_peer_up:  $(query 'p2pmon_peer_up')"
query 'up{job="p2pmon"}' | grep -q '"value":\[[0-9.]*,"1"\]' || { echo "FAIL: target not up"; exit 1; }
query 'p2pmon_peer_up{peer="127.55.0.2"}' | grep -q '"1"\]' || { echo "FAIL: peer not up"; exit 1; }
echo "OK: Prometheus scraped p2pmon"
