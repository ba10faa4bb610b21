# The inference server of the decision-tree sample: a Flask app answering SageMaker's /ping and
# /invocations. This is the file to change to score with a different algorithm.

import io
import os
import pickle

import flask
import pandas as pd

prefix = "/opt/ml/"
model_path = os.path.join(prefix, "model")


# Holds the model once loaded, and predicts with it.
class ScoringService:
    model = None  # the model, once loaded

    @classmethod
    def get_model(cls):
        """The model for this process, loaded on first use."""
        if cls.model is None:
            with open(os.path.join(model_path, "decision-tree-model.pkl"), "rb") as inp:
                cls.model = pickle.load(inp)
        return cls.model

    @classmethod
    def predict(cls, input):
        """Predictions for a pandas data frame: one per row."""
        clf = cls.get_model()
        return clf.predict(input)


# The flask app serving predictions.
app = flask.Flask(__name__)


@app.route("/ping", methods=["GET"])
def ping():
    """Healthy when the model loads (a real health check could go here)."""
    health = ScoringService.get_model() is not None

    status = 200 if health else 404
    return flask.Response(response="\n", status=status, mimetype="application/json")


@app.route("/invocations", methods=["POST"])
def transformation():
    """One batch of inference: CSV in, one prediction per line out."""
    data = None

    # CSV to a pandas data frame.
    if flask.request.content_type == "text/csv":
        data = flask.request.data.decode("utf-8")
        s = io.StringIO(data)
        data = pd.read_csv(s, header=None)
    else:
        return flask.Response(
            response="This predictor only supports CSV data", status=415, mimetype="text/plain"
        )

    print(f"Invoked with {data.shape[0]} records")

    predictions = ScoringService.predict(data)

    # The predictions back to CSV.
    out = io.StringIO()
    pd.DataFrame({"results": predictions}).to_csv(out, header=False, index=False)
    result = out.getvalue()

    return flask.Response(response=result, status=200, mimetype="text/csv")
