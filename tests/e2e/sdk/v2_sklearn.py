"""SDK v2 flow 6: a framework estimator (sagemaker.sklearn.SKLearn, script mode): its
source_dir is uploaded to the object store as sourcedir.tar.gz; fit, deploy, predict."""

from __future__ import annotations

import numpy as np
import sagemaker
from sagemaker.sklearn import SKLearn
from sdk_common import INSTANCE_TYPE, ROLE, done, params

p = params()
session = sagemaker.Session(default_bucket=p["bucket"])
train = session.upload_data(p["train"], key_prefix="skl/train")
estimator = SKLearn(
    entry_point="train.py",
    source_dir=p["source_dir"],
    framework_version="1.2-1",
    py_version="py3",
    role=ROLE,
    instance_count=1,
    instance_type=INSTANCE_TYPE,
    hyperparameters={"max-depth": 3},
    sagemaker_session=session,
)
estimator.fit({"train": train}, logs=True)
job = estimator.latest_training_job.name
result = {"job": job, "model_data": estimator.model_data, "image": estimator.training_image_uri()}
print("sklearn fit done", flush=True)
predictor = estimator.deploy(initial_instance_count=1, instance_type=INSTANCE_TYPE)
try:
    answer = predictor.predict(np.array(p["rows"]))  # SKLearnPredictor: NPY in and out
    result.update(endpoint=predictor.endpoint_name, answer=np.asarray(answer).tolist())
    model = session.sagemaker_client.describe_model(ModelName=predictor._get_model_names()[0])  # noqa: SLF001
    result["model_env"] = model["PrimaryContainer"].get("Environment", {})
finally:
    predictor.delete_model()
    predictor.delete_endpoint()
done(**result)
