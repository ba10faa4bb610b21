"""SDK v3 flow 7: ModelTrainer (sagemaker-train) with SourceCode, on a training image of our
own. ModelTrainer uploads the source as the `code` channel and its driver bundle as the
`sm_drivers` channel, and runs the job as ContainerEntrypoint ["/bin/bash"] with
ContainerArguments ["-c", "chmod +x .../sm_train.sh && .../sm_train.sh"]."""

from __future__ import annotations

import logging

from sagemaker.core.helper.session_helper import Session
from sagemaker.core.training.configs import Compute, InputData, OutputDataConfig, SourceCode
from sagemaker.train import ModelTrainer
from sdk_common import INSTANCE_TYPE, ROLE, done, params

# SDK v3 logs the job's CloudWatch lines through `logging` and leaves logging to the
# application (its rich handler is opt-in): show INFO, as a notebook user would.
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
p = params()
session = Session(default_bucket=p["bucket"])
train = session.upload_data(p["train"], key_prefix="v3/train")
if p["mode"] == "entry_script":
    source = SourceCode(source_dir=p["source_dir"], entry_script="train_v3.py")
else:
    source = SourceCode(source_dir=p["source_dir"], command="python3 train_v3.py --tag command-mode")
trainer = ModelTrainer(
    training_image=p["image"],
    role=ROLE,
    sagemaker_session=session,
    base_job_name=f"sdk-v3-{p['mode'].replace('_', '-')}",
    source_code=source,
    compute=Compute(instance_type=INSTANCE_TYPE, instance_count=1),
    hyperparameters={"epochs": 2},
    output_data_config=OutputDataConfig(s3_output_path=f"s3://{p['bucket']}/v3/output"),
)
trainer.train(input_data_config=[InputData(channel_name="train", data_source=train)], wait=True, logs=True)
job = trainer._latest_training_job  # noqa: SLF001 - the documented way to reach the job
done(
    job=job.training_job_name,
    status=job.training_job_status,
    model_data=job.model_artifacts.s3_model_artifacts,
)
