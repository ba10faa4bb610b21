"""A model's remote inference code (``SAGEMAKER_SUBMIT_DIRECTORY=s3://.../sourcedir.tar.gz``),
staged by the server so the serving container never has to fetch it.

The SageMaker SDK deploys framework models (``SKLearn``, ``PyTorch``, ... with an ``entry_point``)
either by repacking the code into ``model.tar.gz`` under ``code/`` or by leaving it in
``sourcedir.tar.gz`` and naming that archive in the container's ``SAGEMAKER_SUBMIT_DIRECTORY``;
the framework toolkit inside the container then downloads it from S3. Homeport's serving
instances have no network (each runs in its own network namespace with loopback only, as with
``EnableNetworkIsolation``), so the server does the download instead:

* :func:`stage_submit_directory` extracts the archive once per version into the model data cache
  (the same safe extraction, cache key and failure messages as ``model.tar.gz``);
* each instance gets its own writable copy mounted at ``/opt/ml/code`` (toolkits write there:
  the SageMaker containers toolkit adds a ``setup.py`` and pip-installs the folder), and
  ``SAGEMAKER_SUBMIT_DIRECTORY`` is rewritten to ``/opt/ml/code``. Both SageMaker's toolkits and
  Homeport's treat a local folder there as the code, and a folder equal to their target as
  already in place.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from homeport.hosting.instance import CODE_DIR
from homeport.hosting.model_data import ModelDataCache

__all__ = ["CODE_DIR", "SUBMIT_DIR_ENV", "copy_for_instance", "stage_submit_directory"]

SUBMIT_DIR_ENV = "SAGEMAKER_SUBMIT_DIRECTORY"


def stage_submit_directory(
    env: dict[str, str], model_data: ModelDataCache
) -> tuple[dict[str, str], Path | None]:
    """``env`` with a remote submit directory pointed at ``/opt/ml/code``, and the staged folder.

    Returns ``env`` unchanged and None when the code is not an ``s3://`` archive (a local path or
    none at all). Raises :class:`~homeport.hosting.model_data.ModelDataError` (naming the URI)
    when the archive is missing or unsafe.
    """
    submit = env.get(SUBMIT_DIR_ENV, "").strip()
    if not submit.startswith("s3://"):
        return env, None
    staged = model_data.prepare({"ModelDataUrl": submit})
    return {**env, SUBMIT_DIR_ENV: CODE_DIR}, staged


def copy_for_instance(staged: Path, scratch: Path) -> Path:
    """A private, writable copy of the staged code in an instance's scratch folder."""
    target = scratch / "code"
    shutil.copytree(staged, target, symlinks=True)
    return target
