"""``homeport transform``: create a batch transform job (``--model``) or follow an existing one.

``homeport transform JOB`` follows JOB (a progress bar of objects and records done, drawn from
the server's ``/_homeport/transform-jobs/`` route) and exits with its outcome;
``homeport transform JOB --model M --input s3://… [--output s3://…]`` creates it first (a local
``--input`` folder is uploaded to ``s3://<bucket>/<job>/input/``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from homeport.cli.client import Clients, EndpointUrl, JsonFlag
from homeport.cli.exit_codes import cli_errors, exit_with_status, usage
from homeport.cli.logs_client import TERMINAL
from homeport.cli.output import err, print_created, print_json
from homeport.cli.progress import follow_transform
from homeport.cli.training import DEFAULT_BUCKET
from homeport.cli.transfer import S3Location, download_prefix, upload_folder


def _input_uri(clients: Clients, name: str, source: str, bucket: str, quiet: bool) -> str:
    if source.startswith("s3://"):
        return source
    upload_folder(clients.s3, Path(source).expanduser(), S3Location(bucket, f"{name}/input/"), quiet=quiet)
    return f"s3://{bucket}/{name}/input"


def _wait_quietly(sm: Any, name: str, poll: float = 0.5) -> None:
    while sm.describe_transform_job(TransformJobName=name)["TransformJobStatus"] not in TERMINAL:
        time.sleep(poll)


@cli_errors
def transform(
    job: Annotated[str, typer.Argument(help="Transform job name (to create, or to follow).")],
    model: Annotated[
        str | None,
        typer.Option(help="Create the job with this model (else: follow JOB).", show_default=False),
    ] = None,
    input: Annotated[
        str | None,
        typer.Option("--input", help="s3:// prefix of the input objects, or a local folder/file to upload."),
    ] = None,
    output: Annotated[
        str | None, typer.Option(help="S3OutputPath (default s3://BUCKET/JOB/output).", show_default=False)
    ] = None,
    content_type: Annotated[str, typer.Option(help="ContentType of the input.")] = "text/csv",
    split_type: Annotated[str, typer.Option(help="None, Line, RecordIO or TFRecord.")] = "Line",
    accept: Annotated[str | None, typer.Option(help="Accept sent with each request.")] = None,
    batch_strategy: Annotated[str, typer.Option(help="MultiRecord or SingleRecord.")] = "MultiRecord",
    instance_type: Annotated[str, typer.Option(help="TransformResources.InstanceType.")] = "ml.m5.large",
    instance_count: Annotated[int, typer.Option(help="Instances sharing the work.", min=1)] = 1,
    bucket: Annotated[str, typer.Option(help="Bucket for an uploaded --input and the default output.")] = (
        DEFAULT_BUCKET
    ),
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Created job: follow it to the end.")] = True,
    download: Annotated[
        Path | None, typer.Option(help="After a Completed job: download its output into this folder.")
    ] = None,
    endpoint_url: EndpointUrl = None,
    json_out: JsonFlag = False,
) -> None:
    """Create a batch transform job (--model, --input), or follow JOB with a progress bar until it ends.

    Exit code: 0 Completed, 1 Failed, 3 Stopped, 4 no such job.
    """
    clients = Clients.for_url(endpoint_url)
    sm = clients.sagemaker
    if model is None:
        if input or output:
            raise usage("--input/--output create a job: give --model too")
    else:
        if not input:
            raise usage("creating a transform job needs --input")
        request: dict[str, Any] = {
            "TransformJobName": job,
            "ModelName": model,
            "BatchStrategy": batch_strategy,
            "TransformInput": {
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": _input_uri(clients, job, input, bucket, json_out),
                    }
                },
                "ContentType": content_type,
                "SplitType": split_type,
            },
            "TransformOutput": {
                "S3OutputPath": output or f"s3://{bucket}/{job}/output",
                **({"AssembleWith": "Line"} if split_type == "Line" else {}),
                **({"Accept": accept} if accept else {}),
            },
            "TransformResources": {"InstanceType": instance_type, "InstanceCount": instance_count},
        }
        created = sm.create_transform_job(**request)
        if not wait:
            print_created(created, "TransformJobArn", json_out)
            return
        err.print(f"transform job [bold]{job}[/bold] created (model {model})")
    if json_out:
        sm.describe_transform_job(TransformJobName=job)  # not found → exit 4
        _wait_quietly(sm, job)
    else:
        follow_transform(clients.url, job)
    desc = sm.describe_transform_job(TransformJobName=job)
    status = str(desc["TransformJobStatus"])
    if status == "Completed" and download is not None:
        target = S3Location.parse(desc["TransformOutput"]["S3OutputPath"])
        files = download_prefix(clients.s3, target, download, quiet=json_out)
        if not json_out:
            for path in files:
                sys.stdout.write(f"{path}\n")
    if json_out:
        print_json(desc)
    exit_with_status(status, "TransformJobFailed", desc)
