"""SDK v2 flow 3: Estimator.attach to the trained job, deploy, predict with the CSV and JSON
serializers/deserializers, then delete the model and the endpoint."""

from __future__ import annotations

import sagemaker
from sagemaker.deserializers import CSVDeserializer, JSONDeserializer
from sagemaker.estimator import Estimator
from sagemaker.serializers import CSVSerializer, JSONSerializer
from sdk_common import INSTANCE_TYPE, done, params

p = params()
session = sagemaker.Session(default_bucket=p["bucket"])
estimator = Estimator.attach(p["job"], sagemaker_session=session)
predictor = estimator.deploy(initial_instance_count=1, instance_type=INSTANCE_TYPE)
endpoint = predictor.endpoint_name
rows = p["rows"]

predictor.serializer = CSVSerializer()
predictor.deserializer = CSVDeserializer()
csv_answer = predictor.predict(rows)

predictor.serializer = JSONSerializer()
predictor.deserializer = JSONDeserializer()
json_answer = predictor.predict({"instances": rows})

model = predictor._get_model_names()  # noqa: SLF001 - what delete_model is about to delete
predictor.delete_model()
predictor.delete_endpoint()
done(endpoint=endpoint, models=model, csv=csv_answer, json=json_answer)
