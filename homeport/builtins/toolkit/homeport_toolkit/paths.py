"""The container's ``/opt/ml`` layout.

Everything hangs off the base folder: ``SAGEMAKER_BASE_DIR`` when set (as in the AWS toolkits),
else ``/opt/ml``. Each function reads the environment when called, so a test (or a process
runtime) can point the whole layout at another folder.
"""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR_ENV = "SAGEMAKER_BASE_DIR"
DEFAULT_BASE_DIR = "/opt/ml"


def base_dir() -> Path:
    return Path(os.environ.get(BASE_DIR_ENV) or DEFAULT_BASE_DIR)


def model_dir() -> Path:
    """``<base>/model``: the extracted model artifacts when serving, the output of training."""
    return base_dir() / "model"


def serving_code_dir() -> Path:
    """``<base>/model/code``: the inference code shipped inside model.tar.gz."""
    return model_dir() / "code"


def code_dir() -> Path:
    """``<base>/code``: where training extracts ``sagemaker_submit_directory``."""
    return base_dir() / "code"


def input_dir() -> Path:
    return base_dir() / "input"


def input_config_dir() -> Path:
    return input_dir() / "config"


def input_data_dir() -> Path:
    return input_dir() / "data"


def channel_dir(channel: str) -> Path:
    return input_data_dir() / channel


def hyperparameters_file() -> Path:
    return input_config_dir() / "hyperparameters.json"


def resource_config_file() -> Path:
    return input_config_dir() / "resourceconfig.json"


def input_data_config_file() -> Path:
    return input_config_dir() / "inputdataconfig.json"


def output_dir() -> Path:
    return base_dir() / "output"


def output_data_dir() -> Path:
    return output_dir() / "data"


def output_intermediate_dir() -> Path:
    return output_dir() / "intermediate"


def failure_file() -> Path:
    return output_dir() / "failure"


def success_file() -> Path:
    return output_dir() / "success"
