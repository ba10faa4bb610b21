"""A scikit-learn script-mode entry point, as users write them for sagemaker.sklearn.SKLearn."""

import argparse
import json
import os

import joblib
import numpy as np
from sklearn.tree import DecisionTreeClassifier


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-depth", type=int, default=2)
    parser.add_argument("--model-dir", default=os.environ.get("SM_MODEL_DIR"))
    parser.add_argument("--train", default=os.environ.get("SM_CHANNEL_TRAIN"))
    args = parser.parse_args()
    data = np.loadtxt(os.path.join(args.train, "train.csv"), delimiter=",")
    model = DecisionTreeClassifier(max_depth=args.max_depth, random_state=0).fit(data[:, 1:], data[:, 0])
    print(f"sklearn-script trained depth={args.max_depth} score={model.score(data[:, 1:], data[:, 0]):.3f}")
    joblib.dump(model, os.path.join(args.model_dir, "model.joblib"))
    with open(os.path.join(os.path.dirname(__file__), "helper.txt")) as helper:
        note = helper.read().strip()
    with open(os.path.join(args.model_dir, "helper.json"), "w") as out:
        json.dump({"helper": note}, out)
