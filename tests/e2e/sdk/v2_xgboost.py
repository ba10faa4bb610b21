"""SDK v2 flow 5: the built-in XGBoost algorithm by its image URI (image_uris.retrieve), fit
on iris (label first, no header), deploy, predict CSV, delete."""

from __future__ import annotations

import sagemaker
from sagemaker import image_uris
from sagemaker.deserializers import CSVDeserializer
from sagemaker.estimator import Estimator
from sagemaker.inputs import TrainingInput
from sagemaker.serializers import CSVSerializer
from sdk_common import INSTANCE_TYPE, ROLE, done, params

p = params()
session = sagemaker.Session(default_bucket=p["bucket"])
image = image_uris.retrieve("xgboost", "us-east-1", "1.7-1")
train = session.upload_data(p["train"], key_prefix="xgb/train")
validation = session.upload_data(p["validation"], key_prefix="xgb/validation")
estimator = Estimator(
    image_uri=image,
    role=ROLE,
    instance_count=1,
    instance_type=INSTANCE_TYPE,
    output_path=f"s3://{p['bucket']}/xgb/output",
    sagemaker_session=session,
)
estimator.set_hyperparameters(objective="multi:softmax", num_class=3, num_round=10)
estimator.fit(
    {
        "train": TrainingInput(train, content_type="text/csv"),
        "validation": TrainingInput(validation, content_type="text/csv"),
    },
    logs=True,
)
predictor = estimator.deploy(
    initial_instance_count=1,
    instance_type=INSTANCE_TYPE,
    serializer=CSVSerializer(),
    deserializer=CSVDeserializer(),
)
answer = predictor.predict(p["rows"])
endpoint = predictor.endpoint_name
predictor.delete_model()
predictor.delete_endpoint()
done(
    image=image,
    job=estimator.latest_training_job.name,
    model_data=estimator.model_data,
    endpoint=endpoint,
    answer=answer,
)
