#!/usr/bin/env bash
# Sets Homeport up and runs the end-to-end demo on the embedded default:
# start a server, register the classic decision-trees image, upload iris, train with boto3,
# fetch model.tar.gz and predict with the trained model.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export HOMEPORT_HOME=${HOMEPORT_HOME:-$PWD/.homeport}
PORT=${HOMEPORT_DEMO_PORT:-8643}
HP=.venv/bin/homeport
mkdir -p "$HOMEPORT_HOME"
echo "==> homeport server on 127.0.0.1:$PORT (data dir $HOMEPORT_HOME)"
$HP server --port "$PORT" >"$HOMEPORT_HOME/demo-server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  if .venv/bin/python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$PORT/_homeport/health', timeout=1)" 2>/dev/null; then break; fi
  kill -0 $SERVER 2>/dev/null || { cat "$HOMEPORT_HOME/demo-server.log"; exit 1; }
  sleep 0.1
done
echo "==> homeport image add decision-trees examples/decision_trees (venv built once, then cached)"
$HP image add decision-trees examples/decision_trees --requirements examples/decision_trees/requirements.txt
echo "==> homeport cp examples/data/iris.csv s3://demo/iris/train/iris.csv"
$HP cp examples/data/iris.csv s3://demo/iris/train/iris.csv
.venv/bin/python examples/demo.py --endpoint-url "http://127.0.0.1:$PORT"
