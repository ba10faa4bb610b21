"""The training environment, as sagemaker-training 5.1.4 computes it (``Environment.to_env_vars``).

:class:`TrainingEnvironment` reads ``<base>/input/config/{hyperparameters,resourceconfig,
inputdataconfig}.json`` and gives:

* :meth:`~TrainingEnvironment.to_env_vars` — the ``SM_*`` variables the toolkit exports to the
  user's process (``SM_HOSTS``, ``SM_HPS``, ``SM_CHANNEL_<NAME>``, ``SM_HP_<KEY>``,
  ``SM_TRAINING_ENV``, ``SM_USER_ARGS``, ...): keys upper-cased with the ``SM_`` prefix, strings
  as they are, None as "", everything else ``json.dumps(sort_keys=True, separators=(",", ":"))``;
* :meth:`~TrainingEnvironment.to_cmd_args` — the user hyperparameters as arguments
  (``--key value`` sorted by key, ``-k`` for one-letter keys, dicts as ``k=v,k2=v2``);
* :meth:`~TrainingEnvironment.training_env` — the ``SM_TRAINING_ENV`` document (every property).

Hyperparameter values are ``json.loads``-ed, keeping the raw string when that fails. Reserved
ones (names starting ``sagemaker_``, plus ``default_user_module_name``,
``_tuning_objective_metric``) are split from the user's: the user's become ``SM_HPS``, the
arguments and ``SM_HP_*``; reserved ones outside the toolkit's own list become
``SM_FRAMEWORK_PARAMS``.

Built-in algorithm scripts can use it directly::

    from homeport_toolkit.environment import TrainingEnvironment
    env = TrainingEnvironment.read()
    env.hyperparameters, env.channel_input_dirs["train"], env.model_dir
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import paths

SAGEMAKER_PREFIX = "sagemaker_"
USER_PROGRAM_PARAM = "sagemaker_program"
SUBMIT_DIR_PARAM = "sagemaker_submit_directory"
ENABLE_METRICS_PARAM = "sagemaker_enable_cloudwatch_metrics"
REGION_NAME_PARAM = "sagemaker_region"
LOG_LEVEL_PARAM = "sagemaker_container_log_level"
JOB_NAME_PARAM = "sagemaker_job_name"
DEFAULT_MODULE_NAME_PARAM = "default_user_module_name"
TUNING_METRIC_PARAM = "_tuning_objective_metric"
S3_OUTPUT_LOCATION_PARAM = "sagemaker_s3_output"
MPI_ENABLED_PARAM = "sagemaker_mpi_enabled"
DISTRIBUTION_INSTANCE_GROUPS_PARAM = "sagemaker_distribution_instance_groups"
# The toolkit's own reserved names: split from the user's, and not "framework parameters".
SAGEMAKER_HYPERPARAMETERS = (
    USER_PROGRAM_PARAM,
    SUBMIT_DIR_PARAM,
    ENABLE_METRICS_PARAM,
    REGION_NAME_PARAM,
    LOG_LEVEL_PARAM,
    JOB_NAME_PARAM,
    DEFAULT_MODULE_NAME_PARAM,
    TUNING_METRIC_PARAM,
    S3_OUTPUT_LOCATION_PARAM,
)
# Any of these true puts the current instance group in the distribution groups.
DISTRIBUTION_FLAGS = (
    "sagemaker_mpi_enabled",
    "sagemaker_parameter_server_enabled",
    "sagemaker_distributed_dataparallel_enabled",
    "sagemaker_pytorch_ddp_enabled",
    "sagemaker_pytorch_xla_multi_worker_enabled",
    "sagemaker_multi_worker_mirrored_strategy_enabled",
)

USER_PROGRAM_ENV = "SAGEMAKER_PROGRAM"
FRAMEWORK_TRAINING_MODULE_ENV = "SAGEMAKER_TRAINING_MODULE"
TRAINING_JOB_ENV = "TRAINING_JOB_NAME"
SM_HP_MP_PARAMETERS = "SM_HP_MP_PARAMETERS"
DEFAULT_INSTANCE_TYPE = "local"
DEFAULT_INSTANCE_GROUP = "homogeneousCluster"
DEFAULT_NETWORK_INTERFACE = "eth0"


# -- reading the configuration -----------------------------------------------------------------


def _read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def decode_hyperparameters(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Each value ``json.loads``-ed; the raw value when it is not JSON (``"abc"`` stays ``abc``)."""
    decoded: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            decoded[key] = json.loads(value)
        except (TypeError, ValueError):
            decoded[key] = value
    return decoded


def read_hyperparameters() -> dict[str, Any]:
    path = paths.hyperparameters_file()
    return decode_hyperparameters(_read_json(path)) if path.is_file() else {}


def read_resource_config() -> dict[str, Any]:
    path = paths.resource_config_file()
    if path.is_file():
        config: dict[str, Any] = _read_json(path)
        return config
    # No file (a container run by hand): one host, as SageMaker local mode writes it.
    return {"current_host": "algo-1", "hosts": ["algo-1"]}


def read_input_data_config() -> dict[str, Any]:
    path = paths.input_data_config_file()
    return _read_json(path) if path.is_file() else {}


def split_hyperparameters(hyperparameters: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(reserved, user): reserved = the toolkit's names plus every ``sagemaker_``-prefixed one."""
    reserved = {
        k: v
        for k, v in hyperparameters.items()
        if k in SAGEMAKER_HYPERPARAMETERS or k.startswith(SAGEMAKER_PREFIX)
    }
    user = {k: v for k, v in hyperparameters.items() if k not in reserved}
    return reserved, user


# -- the machine -------------------------------------------------------------------------------


def num_gpus() -> int:
    """GPUs ``nvidia-smi --list-gpus`` lists; 0 without it."""
    try:
        output = subprocess.check_output(["nvidia-smi", "--list-gpus"], stderr=subprocess.DEVNULL)
    except (OSError, subprocess.CalledProcessError):
        return 0
    return sum(1 for line in output.decode("utf-8", "replace").split("\n") if line.startswith("GPU "))


def num_neurons(instance_type: str) -> int:
    """Neuron cores (``neuron-ls -j``); 64 on trn2.48xlarge; 0 without them."""
    if "trn2.48xlarge" in instance_type:
        return 64
    try:
        output = subprocess.check_output(["neuron-ls", "-j"], stderr=subprocess.DEVNULL)
        return sum(int(item.get("nc_count", 0)) for item in json.loads(output.decode("utf-8")))
    except (OSError, subprocess.CalledProcessError, ValueError, TypeError, AttributeError):
        return 0


def num_cpus() -> int:
    return os.cpu_count() or 1


# -- the mapping helpers (sagemaker_training.mapping) ------------------------------------------


def _decode(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin1")
    return str(value)


def format_env_value(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("latin1")
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def to_env_vars(mapping: Mapping[str, Any]) -> dict[str, str]:
    """``{"model_dir": "/opt/ml/model", "hps": {...}}`` → ``{"SM_MODEL_DIR": ..., "SM_HPS": "{...}"}``."""
    return {(f"SM_{str(key).upper()}" if key else ""): format_env_value(v) for key, v in mapping.items()}


def to_cmd_args(mapping: Mapping[str, Any]) -> list[str]:
    """``{"epochs": 3, "b": 1}`` → ``["-b", "1", "--epochs", "3"]``: sorted, ``-k`` for one letter."""
    args: list[str] = []
    for key in sorted(mapping):
        name = _decode(key)
        args.append((f"--{name}" if len(name) > 1 else f"-{name}") if name else "")
        value = mapping[key]
        if hasattr(value, "items"):
            args.append(",".join(f"{k}={v}" for k, v in sorted(value.items())))
        else:
            args.append(_decode(value))
    return args


# -- the environment ---------------------------------------------------------------------------


@dataclass
class TrainingEnvironment:
    """What sagemaker-training's ``Environment`` holds, computed the same way."""

    hyperparameters: dict[str, Any]
    additional_framework_parameters: dict[str, Any]
    sagemaker_hyperparameters: dict[str, Any]
    resource_config: dict[str, Any]
    input_data_config: dict[str, Any]
    current_host: str
    hosts: list[str]
    current_instance_type: str
    current_instance_group: str
    network_interface_name: str
    channel_input_dirs: dict[str, str]
    user_entry_point: str | None
    module_name: str | None
    module_dir: str
    log_level: Any  # the hyperparameter as decoded (normally a number), else logging.INFO
    framework_module: str | None
    job_name: str | None
    region: str
    num_cpus: int
    num_gpus: int
    num_neurons: int
    model_dir: str
    code_dir: str
    input_dir: str
    input_config_dir: str
    output_dir: str
    output_data_dir: str
    output_intermediate_dir: str
    topology: Any
    is_modelparallel_enabled: Any
    is_smddprun_installed: bool
    is_smddpmprun_installed: bool
    current_instance_group_hosts: list[str] = field(default_factory=list)
    instance_groups: list[str] = field(default_factory=list)
    instance_groups_dict: dict[str, Any] = field(default_factory=dict)
    distribution_instance_groups: list[str] = field(default_factory=list)
    distribution_hosts: list[str] = field(default_factory=list)
    is_hetero: bool = False
    master_hostname: str = ""
    is_master: bool = False

    @classmethod
    def read(
        cls,
        hyperparameters: Mapping[str, Any] | None = None,
        resource_config: Mapping[str, Any] | None = None,
        input_data_config: Mapping[str, Any] | None = None,
        gpus: int | None = None,
        neurons: int | None = None,
    ) -> TrainingEnvironment:
        """From the config files (or the given, already decoded, values)."""
        all_hps = dict(hyperparameters) if hyperparameters is not None else read_hyperparameters()
        resources = dict(resource_config) if resource_config is not None else read_resource_config()
        channels = dict(input_data_config) if input_data_config is not None else read_input_data_config()
        reserved, user = split_hyperparameters(all_hps)
        framework = {k: v for k, v in reserved.items() if k not in SAGEMAKER_HYPERPARAMETERS}

        program_env = os.environ.get(USER_PROGRAM_ENV) or None
        module_name = program_env if program_env is not None else str(reserved.get(USER_PROGRAM_PARAM, None))
        if module_name and module_name.endswith(".py"):
            module_name = module_name[:-3]
        instance_type = resources.get("current_instance_type", DEFAULT_INSTANCE_TYPE)
        region = (
            reserved.get(REGION_NAME_PARAM)
            or os.environ.get("AWS_DEFAULT_REGION")
            or os.environ.get("AWS_REGION", "")
        )
        mp_parameters = os.environ.get(SM_HP_MP_PARAMETERS)

        env = cls(
            hyperparameters=user,
            additional_framework_parameters=framework,
            sagemaker_hyperparameters=reserved,
            resource_config=resources,
            input_data_config=channels,
            current_host=resources["current_host"],
            hosts=list(resources["hosts"]),
            current_instance_type=instance_type,
            current_instance_group=resources.get("current_group_name", DEFAULT_INSTANCE_GROUP),
            network_interface_name=resources.get("network_interface_name", DEFAULT_NETWORK_INTERFACE),
            channel_input_dirs={name: str(paths.channel_dir(name)) for name in channels},
            user_entry_point=program_env or reserved.get(USER_PROGRAM_PARAM),
            module_name=module_name,
            module_dir=str(reserved.get(SUBMIT_DIR_PARAM, str(paths.code_dir()))),
            log_level=reserved.get(LOG_LEVEL_PARAM, logging.INFO),
            framework_module=os.environ.get(FRAMEWORK_TRAINING_MODULE_ENV),
            job_name=os.environ.get(TRAINING_JOB_ENV),
            region=str(region or ""),
            num_cpus=num_cpus(),
            num_gpus=num_gpus() if gpus is None else gpus,
            num_neurons=num_neurons(instance_type) if neurons is None else neurons,
            model_dir=str(paths.model_dir()),
            code_dir=str(paths.code_dir()),
            input_dir=str(paths.input_dir()),
            input_config_dir=str(paths.input_config_dir()),
            output_dir=str(paths.output_dir()),
            output_data_dir=str(paths.output_data_dir()),
            output_intermediate_dir=str(paths.output_intermediate_dir()),
            topology=resources.get("topology", []),
            is_modelparallel_enabled=mp_parameters and mp_parameters != "{}",
            is_smddprun_installed=shutil.which("smddprun") is not None,
            is_smddpmprun_installed=shutil.which("smddpmprun") is not None,
        )
        env._derive_groups()
        return env

    def _derive_groups(self) -> None:
        groups = self.resource_config.get("instance_groups", []) or []
        self.instance_groups = [g["instance_group_name"] for g in groups]
        self.instance_groups_dict = {g["instance_group_name"]: g for g in groups}
        self.current_instance_group_hosts = next(
            (list(g["hosts"]) for g in groups if g["instance_group_name"] == self.current_instance_group), []
        )
        framework = self.additional_framework_parameters
        if DISTRIBUTION_INSTANCE_GROUPS_PARAM in framework:
            self.distribution_instance_groups = framework[DISTRIBUTION_INSTANCE_GROUPS_PARAM]
        else:
            enabled = any(framework.get(flag, False) for flag in DISTRIBUTION_FLAGS)
            self.distribution_instance_groups = [self.current_instance_group] if enabled else []
        if groups:
            wanted = self.distribution_instance_groups
            self.distribution_hosts = [
                host for g in groups if g["instance_group_name"] in wanted for host in g["hosts"]
            ]
        else:
            self.distribution_hosts = list(self.hosts)
        self.is_hetero = len(self.instance_groups) > 1
        self.master_hostname = self.distribution_hosts[0] if self.distribution_hosts else self.hosts[0]
        self.is_master = self.current_host == self.master_hostname

    # -- what the toolkit exports ------------------------------------------------------------

    def to_cmd_args(self) -> list[str]:
        return to_cmd_args(self.hyperparameters)

    def training_env(self) -> dict[str, Any]:
        """The ``SM_TRAINING_ENV`` document: every property of the toolkit's ``Environment``."""
        return {
            "additional_framework_parameters": self.additional_framework_parameters,
            "channel_input_dirs": self.channel_input_dirs,
            "current_host": self.current_host,
            "current_instance_group": self.current_instance_group,
            "current_instance_group_hosts": self.current_instance_group_hosts,
            "current_instance_type": self.current_instance_type,
            "distribution_hosts": self.distribution_hosts,
            "distribution_instance_groups": self.distribution_instance_groups,
            "framework_module": self.framework_module,
            "hosts": self.hosts,
            "hyperparameters": self.hyperparameters,
            "input_config_dir": self.input_config_dir,
            "input_data_config": self.input_data_config,
            "input_dir": self.input_dir,
            "instance_groups": self.instance_groups,
            "instance_groups_dict": self.instance_groups_dict,
            "is_hetero": self.is_hetero,
            "is_master": self.is_master,
            "is_modelparallel_enabled": self.is_modelparallel_enabled,
            "is_smddpmprun_installed": self.is_smddpmprun_installed,
            "is_smddprun_installed": self.is_smddprun_installed,
            "job_name": self.job_name,
            "log_level": self.log_level,
            "master_hostname": self.master_hostname,
            "model_dir": self.model_dir,
            "module_dir": self.module_dir,
            "module_name": self.module_name,
            "network_interface_name": self.network_interface_name,
            "num_cpus": self.num_cpus,
            "num_gpus": self.num_gpus,
            "num_neurons": self.num_neurons,
            "output_data_dir": self.output_data_dir,
            "output_dir": self.output_dir,
            "output_intermediate_dir": self.output_intermediate_dir,
            "resource_config": self.resource_config,
            "topology": self.topology,
            "user_entry_point": self.user_entry_point,
        }

    def to_env_vars(self) -> dict[str, str]:
        """The ``SM_*`` variables, exactly as the toolkit's ``Environment.to_env_vars``."""
        env: dict[str, Any] = {
            "hosts": self.hosts,
            "network_interface_name": self.network_interface_name,
            "hps": self.hyperparameters,
            "user_entry_point": self.user_entry_point,
            "framework_params": self.additional_framework_parameters,
            "resource_config": self.resource_config,
            "input_data_config": self.input_data_config,
            "output_data_dir": self.output_data_dir,
            "channels": sorted(self.channel_input_dirs),
            "current_host": self.current_host,
            "current_instance_type": self.current_instance_type,
            "current_instance_group": self.current_instance_group,
            "current_instance_group_hosts": self.current_instance_group_hosts,
            "instance_groups": self.instance_groups,
            "instance_groups_dict": self.instance_groups_dict,
            "distribution_instance_groups": self.distribution_instance_groups,
            "is_hetero": self.is_hetero,
            "module_name": self.module_name,
            "log_level": self.log_level,
            "framework_module": self.framework_module,
            "input_dir": self.input_dir,
            "input_config_dir": self.input_config_dir,
            "output_dir": self.output_dir,
            "num_cpus": self.num_cpus,
            "num_gpus": self.num_gpus,
            "num_neurons": self.num_neurons,
            "model_dir": self.model_dir,
            "module_dir": self.module_dir,
            "training_env": self.training_env(),
            "user_args": self.to_cmd_args(),
            "output_intermediate_dir": self.output_intermediate_dir,
        }
        if self.topology:
            env["topology"] = self.topology
        for name, path in self.channel_input_dirs.items():
            env[f"channel_{name}"] = path
        for key, value in self.hyperparameters.items():
            env[f"hp_{key}"] = value
        return to_env_vars(env)

    def process_env(self) -> dict[str, str]:
        """Everything the toolkit adds to the user process's environment.

        The ``SM_*`` variables plus ``SAGEMAKER_JOB_NAME``, ``CURRENT_HOST``, ``SAGEMAKER_REGION``
        and ``PYTHONPATH`` (this interpreter's ``sys.path`` with the code folder first, so the
        user's modules and ``homeport_toolkit`` import in the child).
        """
        env = self.to_env_vars()
        env["SAGEMAKER_JOB_NAME"] = format_env_value(self.sagemaker_hyperparameters.get(JOB_NAME_PARAM, ""))
        env["CURRENT_HOST"] = self.current_host
        env["SAGEMAKER_REGION"] = self.region
        search = [p for p in sys.path if p]
        if self.code_dir not in search:
            search.insert(0, self.code_dir)
        env["PYTHONPATH"] = ":".join(search)
        return env
