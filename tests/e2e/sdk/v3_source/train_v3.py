"""A ModelTrainer entry script: reads what SDK v3's driver exports (SM_* environment),
trains nothing much and writes the model and an output file."""

import argparse
import json
import os
import sys

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=1)
parser.add_argument("--tag", default="none")
args, _ = parser.parse_known_args()
train_dir = os.environ["SM_CHANNEL_TRAIN"]
rows = 0
for name in os.listdir(train_dir):
    with open(os.path.join(train_dir, name)) as fh:
        rows += sum(1 for _ in fh)
for epoch in range(1, args.epochs + 1):
    print(f"v3-script epoch {epoch}/{args.epochs} rows={rows} tag={args.tag}", flush=True)
seen = {k: v for k, v in os.environ.items() if k.startswith("SM_")}
with open(os.path.join(os.environ["SM_MODEL_DIR"], "v3-model.json"), "w") as out:
    json.dump({"argv": sys.argv[1:], "rows": rows, "env": seen, "cwd": os.getcwd()}, out)
print("v3-script done", flush=True)
