"""``homeport deploy`` (CreateModel + CreateEndpointConfig + CreateEndpoint) and ``homeport invoke``."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from homeport.cli.client import Clients, EndpointUrl, JsonFlag
from homeport.cli.exit_codes import cli_errors, exit_with_status, usage
from homeport.cli.output import err, print_created, print_json, status_text
from homeport.cli.training import ROLE, image_uri, pairs

SETTLING = {"Creating", "Updating", "SystemUpdating", "RollingBack"}
VARIANT = "AllTraffic"


def wait_endpoint(sm: Any, name: str, poll: float = 0.5) -> dict[str, Any]:
    """A spinner with the endpoint's status on stderr until it is InService or Failed."""
    started = time.monotonic()
    with err.status(f"endpoint {name}: Creating") as spinner:
        while True:
            desc: dict[str, Any] = sm.describe_endpoint(EndpointName=name)
            status = str(desc["EndpointStatus"])
            if status not in SETTLING:
                return desc
            spinner.update(f"endpoint {name}: {status} ({time.monotonic() - started:.0f} s)")
            time.sleep(poll)


@cli_errors
def deploy(
    name: Annotated[str, typer.Argument(help="Name of the model, endpoint config and endpoint.")],
    model_data: Annotated[
        str | None, typer.Option(help="ModelDataUrl: s3://…/model.tar.gz.", show_default=False)
    ] = None,
    image: Annotated[
        str | None,
        typer.Option(
            help="Serving image (default with --from-job: the job's training image).", show_default=False
        ),
    ] = None,
    from_job: Annotated[
        str | None, typer.Option(help="Take the model data (and image) from a completed training job.")
    ] = None,
    instance_type: Annotated[str, typer.Option(help="Instance type of the variant.")] = "ml.m5.large",
    instance_count: Annotated[int, typer.Option(help="Instances behind the endpoint.", min=1)] = 1,
    env: Annotated[list[str] | None, typer.Option(help="Model Environment KEY=VALUE; repeatable.")] = None,
    role: Annotated[str, typer.Option(help="ExecutionRoleArn (any well-formed ARN).")] = ROLE,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until InService (or Failed).")] = True,
    endpoint_url: EndpointUrl = None,
    json_out: JsonFlag = False,
) -> None:
    """Deploy model data behind a real-time endpoint: model, endpoint config and endpoint named NAME.

    Exit code: 0 InService, 1 Failed.
    """
    sm = Clients.for_url(endpoint_url).sagemaker
    if from_job:
        job = sm.describe_training_job(TrainingJobName=from_job)
        if job["TrainingJobStatus"] != "Completed" or "ModelArtifacts" not in job:
            raise usage(f"training job {from_job} is {job['TrainingJobStatus']}, not Completed")
        model_data = model_data or job["ModelArtifacts"]["S3ModelArtifacts"]
        image = image or job["AlgorithmSpecification"]["TrainingImage"]
    if not image:
        raise usage("give --image (or --from-job)")
    container: dict[str, Any] = {"Image": image_uri(image)}
    if model_data:
        container["ModelDataUrl"] = model_data
    if env:
        container["Environment"] = pairs(env, "--env")
    sm.create_model(ModelName=name, ExecutionRoleArn=role, PrimaryContainer=container)
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": VARIANT,
                "ModelName": name,
                "InitialInstanceCount": instance_count,
                "InstanceType": instance_type,
            }
        ],
    )
    created = sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    if not wait:
        print_created(created, "EndpointArn", json_out)
        return
    desc = wait_endpoint(sm, name)
    status = str(desc["EndpointStatus"])
    if json_out:
        print_json(desc)
    else:
        err.print(f"endpoint [bold]{name}[/bold]: {status_text(status)}")
    exit_with_status(status, "EndpointFailed", desc)


@cli_errors
def invoke(
    endpoint: Annotated[str, typer.Argument(help="Endpoint name.", show_default=False)],
    body: Annotated[str | None, typer.Option(help="Request body as text.", show_default=False)] = None,
    file: Annotated[
        Path | None,
        typer.Option(help="Request body from a file ('-' or neither: stdin).", show_default=False),
    ] = None,
    content_type: Annotated[str, typer.Option(help="Content-Type of the body.")] = "text/csv",
    accept: Annotated[str | None, typer.Option(help="Accept: the answer's wanted type.")] = None,
    endpoint_url: EndpointUrl = None,
    json_out: JsonFlag = False,
) -> None:
    """Send one request to an endpoint (InvokeEndpoint) and print the answer's body to stdout."""
    if body is not None and file is not None:
        raise usage("give --body or --file, not both")
    if body is not None:
        payload = body.encode()
    elif file is not None and str(file) != "-":
        payload = file.read_bytes()
    else:
        stdin = sys.stdin.buffer
        if stdin.isatty():
            raise usage("give --body, --file or a body on stdin")
        payload = stdin.read()
    params: dict[str, Any] = {"EndpointName": endpoint, "Body": payload, "ContentType": content_type}
    if accept:
        params["Accept"] = accept
    answer = Clients.for_url(endpoint_url).runtime.invoke_endpoint(**params)
    data: bytes = answer["Body"].read()
    if json_out:
        print_json(
            {
                "ContentType": answer.get("ContentType"),
                "InvokedProductionVariant": answer.get("InvokedProductionVariant"),
                "Body": data,
            }
        )
        return
    stdout = sys.stdout.buffer
    # The body as sent, byte for byte; a newline only to end a terminal's line.
    stdout.write(data + b"\n" if stdout.isatty() and not data.endswith(b"\n") else data)
    stdout.flush()
