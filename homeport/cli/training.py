"""``homeport train``: CreateTrainingJob from the command line, then its phases and log tail.

Channels are ``NAME=s3://…`` or ``NAME=./local/folder``; a local folder (or file) is uploaded
through the S3 API to ``s3://<bucket>/<job>/input/<NAME>/`` first. The model lands in
``s3://<bucket>/<job>/output/model.tar.gz`` unless ``--output`` says otherwise.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from homeport.cli.client import Clients, EndpointUrl, JsonFlag
from homeport.cli.exit_codes import cli_errors, exit_with_status, usage
from homeport.cli.logs_client import TERMINAL, TRAINING_GROUP, LogTail, writer
from homeport.cli.output import err, print_created, print_json, status_text
from homeport.cli.transfer import S3Location, upload_folder

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
DEFAULT_BUCKET = "homeport"
# Short names for the built-in algorithms: the image URIs the SageMaker SDK writes for them,
# which the server resolves to its own images (docs/builtins.md).
IMAGE_ALIASES = {
    "xgboost": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
    "linear-learner": "382416733822.dkr.ecr.us-east-1.amazonaws.com/linear-learner:1",
}


def image_uri(image: str) -> str:
    return IMAGE_ALIASES.get(image, image)


def pairs(values: list[str] | None, option: str) -> dict[str, str]:
    """``["a=1", "b=2"]`` → ``{"a": "1", "b": "2"}``; anything without ``=`` is a usage error."""
    out: dict[str, str] = {}
    for value in values or []:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise usage(f"{option} wants KEY=VALUE, got {value!r}")
        out[key] = rest
    return out


def _channels(
    clients: Clients, name: str, given: dict[str, str], bucket: str, content_type: str | None, quiet: bool
) -> list[dict[str, Any]]:
    channels = []
    for channel, source in given.items():
        if source.startswith("s3://"):
            uri = source
        else:
            dest = S3Location(bucket, f"{name}/input/{channel}/")
            upload_folder(clients.s3, Path(source).expanduser(), dest, quiet=quiet)
            uri = f"s3://{bucket}/{name}/input/{channel}"
        spec: dict[str, Any] = {
            "ChannelName": channel,
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri}},
        }
        if content_type:
            spec["ContentType"] = content_type
        channels.append(spec)
    return channels


def wait_training(clients: Clients, name: str, show_logs: bool, poll: float = 0.5) -> dict[str, Any]:
    """Print each phase (SecondaryStatusTransitions) to stderr and the log to stdout until it ends."""
    sm = clients.sagemaker
    tail = LogTail(clients.logs, TRAINING_GROUP, f"{name}/") if show_logs else None
    write = writer(False, lambda _s: None)
    shown: list[tuple[str, str]] = []
    while True:
        desc: dict[str, Any] = sm.describe_training_job(TrainingJobName=name)
        for transition in desc.get("SecondaryStatusTransitions", []):
            entry = (str(transition.get("Status", "")), str(transition.get("StatusMessage", "")))
            if entry not in shown:
                shown.append(entry)
                err.print(f"[bold]» {entry[0]}[/bold] {entry[1]}".rstrip())
        if tail is not None:
            for event in tail.poll():
                write(event)
        if desc["TrainingJobStatus"] in TERMINAL:
            return desc
        time.sleep(poll)


def finish(desc: dict[str, Any], json_out: bool) -> None:
    """Report the final status and exit with its code."""
    status = str(desc["TrainingJobStatus"])
    if json_out:
        print_json(desc)
    else:
        model = desc.get("ModelArtifacts", {}).get("S3ModelArtifacts")
        line = f"{desc['TrainingJobName']}: {status_text(status)}"
        if status == "Completed" and model:
            line += f" — model {model}"
        if desc.get("TrainingTimeInSeconds") is not None:
            line += f" ({desc['TrainingTimeInSeconds']} s)"
        err.print(line)
    exit_with_status(status, "TrainingJobFailed", desc)


@cli_errors
def train(
    name: Annotated[str, typer.Argument(help="Training job name.", show_default=False)],
    image: Annotated[
        str,
        typer.Option(
            help="Training image: a registered/engine image, an ECR URI of a built-in, or "
            f"an alias ({', '.join(IMAGE_ALIASES)}).",
            show_default=False,
        ),
    ],
    channel: Annotated[
        list[str] | None,
        typer.Option(help="NAME=s3://bucket/prefix or NAME=./local/folder (uploaded first); repeatable."),
    ] = None,
    hp: Annotated[list[str] | None, typer.Option(help="Hyperparameter KEY=VALUE; repeatable.")] = None,
    env: Annotated[list[str] | None, typer.Option(help="Environment KEY=VALUE; repeatable.")] = None,
    instance_type: Annotated[str, typer.Option(help="ResourceConfig.InstanceType.")] = "ml.m5.large",
    output: Annotated[
        str | None, typer.Option(help="S3OutputPath (default s3://BUCKET; model at BUCKET/NAME/output/).")
    ] = None,
    bucket: Annotated[str, typer.Option(help="Bucket for uploaded channels and the default output.")] = (
        DEFAULT_BUCKET
    ),
    content_type: Annotated[
        str | None, typer.Option(help="ContentType of every channel (e.g. text/csv).")
    ] = None,
    max_runtime: Annotated[int, typer.Option(help="StoppingCondition.MaxRuntimeInSeconds.", min=1)] = 86400,
    role: Annotated[str, typer.Option(help="RoleArn (any well-formed ARN).")] = ROLE,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Follow the job until it ends.")] = True,
    logs: Annotated[bool, typer.Option("--logs/--no-logs", help="With --wait: tail the job's log.")] = True,
    endpoint_url: EndpointUrl = None,
    json_out: JsonFlag = False,
) -> None:
    """Create a training job (uploading local channels first); with --wait, follow it to the end.

    Exit code: 0 Completed, 1 Failed, 3 Stopped (see `homeport --help` / docs/cli.md).
    """
    clients = Clients.for_url(endpoint_url)
    hyperparameters = pairs(hp, "--hp")
    environment = pairs(env, "--env")
    channels = _channels(clients, name, pairs(channel, "--channel"), bucket, content_type, json_out)
    request: dict[str, Any] = {
        "TrainingJobName": name,
        "RoleArn": role,
        "AlgorithmSpecification": {"TrainingImage": image_uri(image), "TrainingInputMode": "File"},
        "OutputDataConfig": {"S3OutputPath": output or f"s3://{bucket}"},
        "ResourceConfig": {"InstanceType": instance_type, "InstanceCount": 1, "VolumeSizeInGB": 10},
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime},
    }
    if hyperparameters:
        request["HyperParameters"] = hyperparameters
    if environment:
        request["Environment"] = environment
    if channels:
        request["InputDataConfig"] = channels
    created = clients.sagemaker.create_training_job(**request)
    if not wait:
        print_created(created, "TrainingJobArn", json_out)
        return
    err.print(f"training job [bold]{name}[/bold] created ({image_uri(image)})")
    finish(wait_training(clients, name, show_logs=not json_out), json_out)
