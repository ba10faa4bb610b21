"""The SM_* environment of homeport_toolkit, against values worked out by hand (sagemaker-training 5.1.4)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from homeport_toolkit import environment
from homeport_toolkit.environment import TrainingEnvironment, to_cmd_args, to_env_vars

# What the SDK's PyTorch estimator writes (every value JSON-encoded), plus a raw (non-JSON)
# string, a one-letter key, a hyphenated key, a dict, and two reserved framework parameters.
HYPERPARAMETERS = {
    "epochs": "3",
    "name": '"abc"',
    "lr": "0.1",
    "b": "true",
    "max-leaf-nodes": "5",
    "layers": "[1, 2]",
    "opts": '{"z": 1, "a": "x"}',
    "raw": "not json",
    "sagemaker_submit_directory": '"s3://bucket/job/source/sourcedir.tar.gz"',
    "sagemaker_program": '"train.py"',
    "sagemaker_container_log_level": "20",
    "sagemaker_job_name": '"job-1"',
    "sagemaker_region": '"eu-west-1"',
    "sagemaker_mpi_enabled": "false",
    "sagemaker_network_interface_name": '"eth9"',
    "_tuning_objective_metric": '"loss"',
}
RESOURCES = {
    "current_host": "algo-1",
    "current_instance_type": "ml.m5.large",
    "current_group_name": "homogeneousCluster",
    "hosts": ["algo-1"],
    "instance_groups": [
        {"instance_group_name": "homogeneousCluster", "instance_type": "ml.m5.large", "hosts": ["algo-1"]}
    ],
    "network_interface_name": "eth0",
}
CHANNELS = {
    "train": {
        "ContentType": "text/csv",
        "TrainingInputMode": "File",
        "S3DistributionType": "FullyReplicated",
    },
    "validation": {
        "TrainingInputMode": "File",
        "S3DistributionType": "FullyReplicated",
        "RecordWrapperType": "None",
    },
}


def compact(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


@pytest.fixture
def config(base_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = base_dir / "input" / "config"
    folder.mkdir(parents=True)
    (folder / "hyperparameters.json").write_text(json.dumps(HYPERPARAMETERS))
    (folder / "resourceconfig.json").write_text(json.dumps(RESOURCES))
    (folder / "inputdataconfig.json").write_text(json.dumps(CHANNELS))
    monkeypatch.setenv("TRAINING_JOB_NAME", "job-1")
    monkeypatch.setenv("PATH", str(base_dir))  # no nvidia-smi, neuron-ls, smddprun here
    return base_dir


def test_hyperparameters_are_json_decoded_and_split(config: Path) -> None:
    env = TrainingEnvironment.read()
    assert env.hyperparameters == {
        "epochs": 3,
        "name": "abc",
        "lr": 0.1,
        "b": True,
        "max-leaf-nodes": 5,
        "layers": [1, 2],
        "opts": {"z": 1, "a": "x"},
        "raw": "not json",
    }
    assert env.additional_framework_parameters == {
        "sagemaker_mpi_enabled": False,
        "sagemaker_network_interface_name": "eth9",
    }
    assert env.sagemaker_hyperparameters["_tuning_objective_metric"] == "loss"


def test_user_args_sorted_short_keys_dicts() -> None:
    assert to_cmd_args({"epochs": 3, "b": True, "opts": {"z": 1, "a": "x"}, "name": "abc", "none": None}) == [
        "-b",
        "True",
        "--epochs",
        "3",
        "--name",
        "abc",
        "--none",
        "",
        "--opts",
        "a=x,z=1",
    ]


def test_to_env_vars_formatting() -> None:
    assert to_env_vars({"a": "text", "b": None, "c": 3, "d": {"y": [1, 2], "x": True}}) == {
        "SM_A": "text",
        "SM_B": "",
        "SM_C": "3",
        "SM_D": '{"x":true,"y":[1,2]}',
    }


def test_sm_variables_for_a_sample_job(config: Path) -> None:
    base = str(config)
    user_hps = {
        "b": True,
        "epochs": 3,
        "layers": [1, 2],
        "lr": 0.1,
        "max-leaf-nodes": 5,
        "name": "abc",
        "opts": {"a": "x", "z": 1},
        "raw": "not json",
    }
    user_args = [
        "-b",
        "True",
        "--epochs",
        "3",
        "--layers",
        "[1, 2]",
        "--lr",
        "0.1",
        "--max-leaf-nodes",
        "5",
        "--name",
        "abc",
        "--opts",
        "a=x,z=1",
        "--raw",
        "not json",
    ]
    channel_dirs = {"train": f"{base}/input/data/train", "validation": f"{base}/input/data/validation"}
    framework = {"sagemaker_mpi_enabled": False, "sagemaker_network_interface_name": "eth9"}
    cpus = os.cpu_count()
    expected = {
        "SM_HOSTS": '["algo-1"]',
        "SM_NETWORK_INTERFACE_NAME": "eth0",
        "SM_HPS": compact(user_hps),
        "SM_USER_ENTRY_POINT": "train.py",
        "SM_FRAMEWORK_PARAMS": compact(framework),
        "SM_RESOURCE_CONFIG": compact(RESOURCES),
        "SM_INPUT_DATA_CONFIG": compact(CHANNELS),
        "SM_OUTPUT_DATA_DIR": f"{base}/output/data",
        "SM_CHANNELS": '["train","validation"]',
        "SM_CURRENT_HOST": "algo-1",
        "SM_CURRENT_INSTANCE_TYPE": "ml.m5.large",
        "SM_CURRENT_INSTANCE_GROUP": "homogeneousCluster",
        "SM_CURRENT_INSTANCE_GROUP_HOSTS": '["algo-1"]',
        "SM_INSTANCE_GROUPS": '["homogeneousCluster"]',
        "SM_INSTANCE_GROUPS_DICT": compact({"homogeneousCluster": RESOURCES["instance_groups"][0]}),
        "SM_DISTRIBUTION_INSTANCE_GROUPS": "[]",
        "SM_IS_HETERO": "false",
        "SM_MODULE_NAME": "train",
        "SM_LOG_LEVEL": "20",
        "SM_FRAMEWORK_MODULE": "",
        "SM_INPUT_DIR": f"{base}/input",
        "SM_INPUT_CONFIG_DIR": f"{base}/input/config",
        "SM_OUTPUT_DIR": f"{base}/output",
        "SM_NUM_CPUS": str(cpus),
        "SM_NUM_GPUS": "0",
        "SM_NUM_NEURONS": "0",
        "SM_MODEL_DIR": f"{base}/model",
        "SM_MODULE_DIR": "s3://bucket/job/source/sourcedir.tar.gz",
        "SM_USER_ARGS": json.dumps(user_args, separators=(",", ":")),
        "SM_OUTPUT_INTERMEDIATE_DIR": f"{base}/output/intermediate",
        "SM_CHANNEL_TRAIN": f"{base}/input/data/train",
        "SM_CHANNEL_VALIDATION": f"{base}/input/data/validation",
        "SM_HP_EPOCHS": "3",
        "SM_HP_NAME": "abc",
        "SM_HP_LR": "0.1",
        "SM_HP_B": "true",
        "SM_HP_MAX-LEAF-NODES": "5",
        "SM_HP_LAYERS": "[1,2]",
        "SM_HP_OPTS": '{"a":"x","z":1}',
        "SM_HP_RAW": "not json",
    }
    training_env = {
        "additional_framework_parameters": framework,
        "channel_input_dirs": channel_dirs,
        "current_host": "algo-1",
        "current_instance_group": "homogeneousCluster",
        "current_instance_group_hosts": ["algo-1"],
        "current_instance_type": "ml.m5.large",
        "distribution_hosts": [],
        "distribution_instance_groups": [],
        "framework_module": None,
        "hosts": ["algo-1"],
        "hyperparameters": user_hps,
        "input_config_dir": f"{base}/input/config",
        "input_data_config": CHANNELS,
        "input_dir": f"{base}/input",
        "instance_groups": ["homogeneousCluster"],
        "instance_groups_dict": {"homogeneousCluster": RESOURCES["instance_groups"][0]},
        "is_hetero": False,
        "is_master": True,
        "is_modelparallel_enabled": None,
        "is_smddpmprun_installed": False,
        "is_smddprun_installed": False,
        "job_name": "job-1",
        "log_level": 20,
        "master_hostname": "algo-1",
        "model_dir": f"{base}/model",
        "module_dir": "s3://bucket/job/source/sourcedir.tar.gz",
        "module_name": "train",
        "network_interface_name": "eth0",
        "num_cpus": cpus,
        "num_gpus": 0,
        "num_neurons": 0,
        "output_data_dir": f"{base}/output/data",
        "output_dir": f"{base}/output",
        "output_intermediate_dir": f"{base}/output/intermediate",
        "resource_config": RESOURCES,
        "topology": [],
        "user_entry_point": "train.py",
    }
    variables = TrainingEnvironment.read().to_env_vars()
    got_training_env = json.loads(variables.pop("SM_TRAINING_ENV"))
    assert variables == expected
    assert got_training_env == training_env


def test_process_env_adds_job_host_region_and_pythonpath(config: Path) -> None:
    extra = TrainingEnvironment.read().process_env()
    assert extra["SAGEMAKER_JOB_NAME"] == "job-1"
    assert extra["CURRENT_HOST"] == "algo-1"
    assert extra["SAGEMAKER_REGION"] == "eu-west-1"
    search = extra["PYTHONPATH"].split(":")
    assert search[0] == str(config / "code")
    assert [p for p in sys.path if p][0] in search


def test_defaults_and_distribution(base_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(base_dir))
    monkeypatch.setenv("SAGEMAKER_PROGRAM", "entry.py")
    monkeypatch.setenv("SM_HP_MP_PARAMETERS", '{"partitions": 2}')
    resources = {
        "current_host": "algo-2",
        "hosts": ["algo-1", "algo-2", "algo-3"],
        "current_group_name": "train",
        "instance_groups": [
            {"instance_group_name": "data", "instance_type": "ml.c5.xlarge", "hosts": ["algo-3"]},
            {"instance_group_name": "train", "instance_type": "ml.p3.2xlarge", "hosts": ["algo-1", "algo-2"]},
        ],
        "topology": [["algo-1", "algo-2"]],
    }
    env = TrainingEnvironment.read({"sagemaker_mpi_enabled": True}, resources, {})
    assert env.current_instance_type == "local"
    assert env.network_interface_name == "eth0"
    assert env.user_entry_point == "entry.py" and env.module_name == "entry"
    assert env.module_dir == str(base_dir / "code")
    assert env.distribution_instance_groups == ["train"]
    assert env.distribution_hosts == ["algo-1", "algo-2"]
    assert env.current_instance_group_hosts == ["algo-1", "algo-2"]
    assert env.is_hetero and not env.is_master and env.master_hostname == "algo-1"
    assert env.is_modelparallel_enabled is True
    variables = env.to_env_vars()
    assert variables["SM_TOPOLOGY"] == '[["algo-1","algo-2"]]'
    assert variables["SM_CHANNELS"] == "[]"
    assert variables["SM_USER_ARGS"] == "[]"
    assert variables["SM_LOG_LEVEL"] == "20"


def test_gpu_count_from_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'GPU 0: A (UUID: x)'\necho 'GPU 1: B (UUID: y)'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert environment.num_gpus() == 2
    fake.unlink()
    assert environment.num_gpus() == 0
