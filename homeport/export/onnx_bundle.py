"""The portable ONNX bundle: a model's ``model.onnx`` plus a standalone server folder.

:func:`fetch_model_onnx` materialises a SageMaker model's data (``ModelDataUrl`` or
``ModelDataSource``) from Homeport's object store through the hosting model-data cache (safe
extraction, the same errors an endpoint would report) and finds ``model.onnx`` in it;
:func:`write_bundle` writes the folder: the model, ``template/`` (server, ``serve`` script,
requirements, Dockerfile, README) and the ONNX image's ``onnx_handler.py``, so the exported
server answers exactly as the built-in ``onnx`` image does, without Homeport.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from homeport.hosting.model_data import ModelDataCache, model_data_spec
from homeport.storage.base import ObjectStore

MODEL_FILE = "model.onnx"
TEMPLATE_DIR = Path(__file__).with_name("template")
HANDLER = Path(__file__).resolve().parents[1] / "builtins" / "images" / "onnx" / "onnx_handler.py"
# Template files, in the order they are listed to the user; README.md gets the placeholders.
TEMPLATE_FILES = ("server.py", "serve", "requirements.txt", "Dockerfile", ".dockerignore", "README.md")
EXECUTABLE = {"server.py", "serve"}
NO_ONNX_HINT = "built-in XGBoost, Linear Learner and scikit-learn models write one"


class ExportError(Exception):
    """A model that cannot be exported (no model data, no ``model.onnx``, a bad output folder)."""


def model_container(model_name: str, description: Mapping[str, Any]) -> dict[str, Any]:
    """The one container of a DescribeModel answer; inference pipelines cannot be exported."""
    containers = description.get("Containers") or []
    if description.get("PrimaryContainer"):
        return dict(description["PrimaryContainer"])
    if len(containers) == 1:
        return dict(containers[0])
    raise ExportError(
        f"model {model_name} has {len(containers)} containers (an inference pipeline); "
        "export takes a model with one container"
    )


def fetch_model_onnx(model_name: str, container: Mapping[str, Any], store: ObjectStore, work: Path) -> Path:
    """``model.onnx`` of the container's model data, extracted under ``work``."""
    if model_data_spec(container) is None:
        raise ExportError(f"model {model_name} has no model data (ModelDataUrl); nothing to export")
    folder = ModelDataCache(work / "model-data", store).prepare(container)
    found = find_model_onnx(folder) if folder is not None else None
    if found is None:
        raise ExportError(f"model {model_name} has no {MODEL_FILE}; {NO_ONNX_HINT}")
    return found


def find_model_onnx(folder: Path) -> Path | None:
    """``folder/model.onnx``, else the only ``model.onnx`` further down."""
    top = folder / MODEL_FILE
    if top.is_file():
        return top
    nested = sorted(p for p in folder.rglob(MODEL_FILE) if p.is_file() and not p.is_symlink())
    return nested[0] if len(nested) == 1 else None


def check_out_dir(out: Path, force: bool) -> None:
    """``out`` must be absent or empty, unless ``force`` allows writing over its files."""
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ExportError(f"{out} is not empty (use --force to write over it)")


def image_name(model_name: str) -> str:
    """A Docker repository name for the model: lower case, ``[a-z0-9._-]``."""
    name = re.sub(r"[^a-z0-9._-]+", "-", model_name.lower()).strip("-._")
    return name or "onnx-model"


def write_bundle(model_onnx: Path, out: Path, model_name: str, model_data: str) -> list[Path]:
    """Write the standalone server folder into ``out``; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    written = [_copy(model_onnx, out / MODEL_FILE), _copy(HANDLER, out / HANDLER.name)]
    for name in TEMPLATE_FILES:
        text = (TEMPLATE_DIR / name).read_text()
        if name == "README.md":
            text = (
                text.replace("{{MODEL_NAME}}", model_name)
                .replace("{{IMAGE_NAME}}", image_name(model_name))
                .replace("{{MODEL_DATA}}", model_data)
            )
        target = out / name
        target.write_text(text)
        os.chmod(target, 0o755 if name in EXECUTABLE else 0o644)
        written.append(target)
    return written


def _copy(src: Path, dest: Path) -> Path:
    shutil.copyfile(src, dest)
    os.chmod(dest, 0o644)
    return dest
