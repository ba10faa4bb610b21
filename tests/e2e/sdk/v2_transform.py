"""SDK v2 flow 4: a batch transform from the trained job (Estimator.transformer), then wait()
with the transform job's log streamed."""

from __future__ import annotations

import sagemaker
from sagemaker.estimator import Estimator
from sdk_common import INSTANCE_TYPE, done, params

p = params()
session = sagemaker.Session(default_bucket=p["bucket"])
batch = session.upload_data(p["batch"], key_prefix="byo/batch")
estimator = Estimator.attach(p["job"], sagemaker_session=session)
transformer = estimator.transformer(
    instance_count=1,
    instance_type=INSTANCE_TYPE,
    output_path=f"s3://{p['bucket']}/byo/predictions",
    assemble_with="Line",
)
transformer.transform(data=batch, content_type="text/csv", split_type="Line", wait=False)
transformer.wait()
model_name = transformer.model_name
transformer.delete_model()
done(
    job=transformer.latest_transform_job.name,
    output_path=transformer.output_path,
    input=batch,
    model=model_name,
)
