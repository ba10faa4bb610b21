"""SDK v2 flow 2: Session.upload_data, then a generic Estimator over a bring-your-own image,
fit with a train and a validation channel and the job's log streamed (logs=True)."""

from __future__ import annotations

import sagemaker
from sagemaker.estimator import Estimator
from sdk_common import INSTANCE_TYPE, ROLE, done, params

p = params()
session = sagemaker.Session(default_bucket=p["bucket"])
train = session.upload_data(p["train"], key_prefix="byo/train")
validation = session.upload_data(p["validation"], key_prefix="byo/validation")
estimator = Estimator(
    image_uri=p["image"],
    role=ROLE,
    instance_count=1,
    instance_type=INSTANCE_TYPE,
    output_path=f"s3://{p['bucket']}/byo/output",
    hyperparameters={"epochs": 3},
    base_job_name="sdk-byo",
    sagemaker_session=session,
)
estimator.fit({"train": train, "validation": validation}, logs=True)
done(
    job=estimator.latest_training_job.name,
    model_data=estimator.model_data,
    train=train,
    validation=validation,
)
