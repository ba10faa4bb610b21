#!/usr/bin/env bash
# The newcomer's tour, in one command, through the `homeport` CLI:
# start the embedded server (process runtime, data in ./.homeport), split iris into train and
# validation CSVs, train the built-in XGBoost, deploy the model, predict a few rows, batch-predict
# the validation set, print the results and clean up.
# The first run also builds the built-in XGBoost's venv (cached in the data dir; ~1 min);
# later runs take about 15 seconds.
# HOMEPORT_DEMO_PORT (default 8643), HOMEPORT_HOME (default ./.homeport),
# HOMEPORT_DEMO_SKIP_SETUP=1 to skip scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -n "${HOMEPORT_DEMO_SKIP_SETUP:-}" ]] || scripts/setup.sh
export HOMEPORT_HOME=${HOMEPORT_HOME:-$PWD/.homeport}
PORT=${HOMEPORT_DEMO_PORT:-8643}
export HOMEPORT_URL="http://127.0.0.1:$PORT"
HP=.venv/bin/homeport
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

mkdir -p "$HOMEPORT_HOME"
WORK=$(mktemp -d)
step "homeport server --port $PORT --runtime process   (data dir $HOMEPORT_HOME)"
$HP server --port "$PORT" --runtime process --instance-stop-grace 5 >"$HOMEPORT_HOME/demo-server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 1 200); do
  if .venv/bin/python -c "import urllib.request; urllib.request.urlopen('$HOMEPORT_URL/_homeport/health', timeout=1)" 2>/dev/null; then break; fi
  kill -0 $SERVER 2>/dev/null || { cat "$HOMEPORT_HOME/demo-server.log"; exit 1; }
  sleep 0.1
done

step "iris → label-first CSVs without a header: $WORK/{train,validation,batch}"
.venv/bin/python examples/iris_tour.py split "$WORK"
head -n 3 "$WORK/train/train.csv"

RUN="iris-$(date +%Y%m%d-%H%M%S)"   # training job names are never reused
step "homeport train $RUN --image xgboost ...   (local folders are uploaded through the S3 API)"
$HP train "$RUN" --image xgboost \
  --channel train="$WORK/train" --channel validation="$WORK/validation" --content-type text/csv \
  --hp objective=multi:softmax --hp num_class=3 --hp num_round=10 --hp max_depth=3

step "homeport deploy $RUN --from-job $RUN   (model + endpoint config + endpoint)"
$HP deploy "$RUN" --from-job "$RUN"

step "homeport invoke $RUN --file predict.csv   (five flowers → class indices)"
cat "$WORK/predict.csv"
echo "--"
$HP invoke "$RUN" --file "$WORK/predict.csv" --content-type text/csv
echo

step "homeport transform $RUN-batch --model $RUN --input batch/ --download predictions/"
$HP transform "$RUN-batch" --model "$RUN" --input "$WORK/batch" --download "$WORK/predictions"
.venv/bin/python examples/iris_tour.py show "$WORK/labels.txt" "$WORK/predictions/iris.csv.out"

step "homeport ls jobs / endpoints"
$HP ls jobs --limit 3
$HP ls endpoints

step "homeport rm endpoint $RUN --all-related   (endpoint, its config and its model)"
$HP rm endpoint "$RUN" --all-related
echo
echo "Done. The same resources are visible to boto3: see examples/demo.py and README.md."
