"""Homeport's end-to-end demo: train the classic decision-trees image on iris, deploy it, invoke it.

Run through scripts/demo.sh, which starts the server and registers the image first.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint-url", required=True)
    args = parser.parse_args()
    sm = boto3.client(
        "sagemaker",
        endpoint_url=args.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="homeport",
        aws_secret_access_key="homeport",
    )
    name = f"iris-demo-{int(time.time())}"
    print(f"==> CreateTrainingJob {name}")
    sm.create_training_job(
        TrainingJobName=name,
        RoleArn=ROLE,
        AlgorithmSpecification={"TrainingImage": "decision-trees:latest", "TrainingInputMode": "File"},
        HyperParameters={"max_leaf_nodes": "5"},
        InputDataConfig=[
            {
                "ChannelName": "training",
                "ContentType": "text/csv",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://demo/iris/train"}},
            }
        ],
        OutputDataConfig={"S3OutputPath": "s3://demo/iris/output"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        StoppingCondition={"MaxRuntimeInSeconds": 600},
    )
    sm.get_waiter("training_job_completed_or_stopped").wait(
        TrainingJobName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 600}
    )
    desc = sm.describe_training_job(TrainingJobName=name)
    for t in desc["SecondaryStatusTransitions"]:
        print(f"    {t['Status']:<12} {t['StatusMessage']}")
    if desc["TrainingJobStatus"] != "Completed":
        sys.exit(f"training failed: {desc.get('FailureReason')}")
    uri = desc["ModelArtifacts"]["S3ModelArtifacts"]
    print(f"==> model: {uri} ({desc['TrainingTimeInSeconds']} s of training)")
    homeport = str(Path(sys.executable).parent / "homeport")
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "model.tar.gz"
        subprocess.run([homeport, "cp", uri, str(archive)], check=True, env=os.environ)
        with tarfile.open(archive) as tar:
            print(f"==> model.tar.gz holds {tar.getnames()}")
            tar.extractall(Path(tmp) / "model", filter="data")
        model_file = Path(tmp) / "model" / "decision-tree-model.pkl"
        # scikit-learn lives in the image's venv, not in Homeport's: predict with the image's python.
        images = json.loads(
            subprocess.run(
                [homeport, "image", "ls", "--json"], check=True, capture_output=True, text=True
            ).stdout
        )
        venv = next(i["venv"] for i in images if i["name"] == "decision-trees")
        rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
        script = (
            "import json, pickle, sys; m = pickle.load(open(sys.argv[1], 'rb'));"
            "print(list(m.predict(json.loads(sys.argv[2]))))"
        )
        result = subprocess.run(
            [str(Path(venv) / "bin" / "python"), "-c", script, str(model_file), json.dumps(rows)],
            check=True,
            capture_output=True,
            text=True,
        )
        print(f"==> predict {rows} -> {result.stdout.strip()}")

    deploy_and_invoke(sm, args.endpoint_url, name, uri)


def deploy_and_invoke(client: Any, endpoint_url: str, name: str, model_data: str) -> None:
    """CreateModel → CreateEndpointConfig → CreateEndpoint → InvokeEndpoint → delete, as on SageMaker."""
    print(f"==> deploy {name}: CreateModel, CreateEndpointConfig, CreateEndpoint")
    client.create_model(
        ModelName=name,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": "decision-trees:latest", "ModelDataUrl": model_data},
    )
    client.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "InitialInstanceCount": 2,
                "InstanceType": "ml.m5.large",
            }
        ],
    )
    started = time.time()
    client.create_endpoint(EndpointName=name, EndpointConfigName=name)
    client.get_waiter("endpoint_in_service").wait(
        EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 300}
    )
    print(f"==> endpoint {name} InService with 2 instances after {time.time() - started:.1f} s")
    runtime = boto3.client(
        "sagemaker-runtime",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="homeport",
        aws_secret_access_key="homeport",
    )
    body = "5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n5.9,3.0,4.2,1.5\n"
    response = runtime.invoke_endpoint(EndpointName=name, Body=body.encode(), ContentType="text/csv")
    labels = response["Body"].read().decode().split()
    print(f"==> InvokeEndpoint {body.split()} -> {labels} (variant {response['InvokedProductionVariant']})")
    client.delete_endpoint(EndpointName=name)
    client.get_waiter("endpoint_deleted").wait(
        EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
    )
    client.delete_endpoint_config(EndpointConfigName=name)
    client.delete_model(ModelName=name)
    print("==> endpoint deleted, its processes stopped")


if __name__ == "__main__":
    main()
