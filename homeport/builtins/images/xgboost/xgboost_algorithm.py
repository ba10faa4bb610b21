"""Homeport's XGBoost algorithm: SageMaker's built-in XGBoost (``sagemaker-xgboost`` 1.5-1/1.7-1).

``train`` runs :func:`main`. With ``sagemaker_program`` among the hyperparameters the job is
script mode and the toolkit runs the user's entry point; otherwise this module is the algorithm:

1. the hyperparameters are validated as the container does (names, types, ranges, the
   dependencies between them), with its messages (``Missing required hyperparameter: num_round``,
   ``Hyperparameter eta: 1.5 is not in [0, 1]``, ...);
2. the ``train`` channel (required) and ``validation`` channel (optional) are read: CSV (label in
   the first column, no header, every file under the channel's folder), LIBSVM or Parquet (label
   in the first column), by each channel's ``ContentType``;
3. ``xgb.train`` runs with SageMaker's evaluation lines on stdout
   (``[0]\\ttrain-merror:0.05000\\tvalidation-merror:0.10000``, what the metric regexes read)
   and the container's early stopping (on the ``validation`` channel, by the last
   ``eval_metric``, keeping the best iteration);
4. the model is saved as ``<model>/xgboost-model`` (``Booster.save_model``, JSON) and, when the
   objective converts exactly, as ``<model>/model.onnx`` (onnxmltools; input ``input``).

A validation or data error exits 1 with ``ClientError: <message>`` in ``<base>/output/failure``;
any other failure exits 2 with ``AlgorithmError: <message>``. Only the standard library is
imported at module level: script mode never pays for numpy or xgboost.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import xgboost as xgb

log = logging.getLogger("xgboost_algorithm")

MODEL_NAME = "xgboost-model"
ONNX_NAME = "model.onnx"
ONNX_INPUT = "input"
CHECKPOINT_NAME = "xgboost-checkpoint"

CSV = "csv"
LIBSVM = "libsvm"
PARQUET = "parquet"
RECORDIO_PROTOBUF = "recordio-protobuf"

VALID_CONTENT_TYPES = [
    CSV, LIBSVM, PARQUET, RECORDIO_PROTOBUF, "text/csv", "text/libsvm", "text/x-libsvm",
    "application/x-parquet", "application/x-recordio-protobuf",
]

# sagemaker_xgboost_container.constants.xgb_constants
XGB_MAXIMIZE_METRICS = [
    "accuracy", "auc", "aucpr", "balanced_accuracy", "f1", "f1_binary", "f1_macro", "map", "ndcg",
    "precision", "r2", "recall", "precision_macro", "precision_micro", "recall_macro", "recall_micro",
]
XGB_MINIMIZE_METRICS = [
    "aft-nloglik", "cox-nloglik", "error", "gamma-deviance", "gamma-nloglik",
    "interval-regression-accuracy", "logloss", "mae", "mape", "merror", "mlogloss", "mphe", "mse",
    "poisson-nloglik", "rmse", "rmsle", "tweedie-nloglik",
]
# Errors in xgboost's own messages that are the job's fault (the container's CUSTOMER_ERRORS).
CUSTOMER_ERRORS = (
    "label must be in [0,1] for logistic regression",
    "label must be in [0, num_class)",
    "Target is multiclass but average='binary'",
    "feature_names mismatch",
    "Check failed: preds.size() == info.labels_.size()",
    "Check failed: !auc_error AUC: the dataset only contains pos or neg samples",
    "base_score must be in (0,1) for",
    "label must be nonnegative",
    "Parameter reg_lambda should be greater equal to 0",
    "Label contains NaN",
    "Feature shape mismatch",
)
# Hyperparameters the container accepts that current xgboost no longer knows: dropped, not passed.
_REMOVED_PARAMS = (
    "predictor", "single_precision_histogram", "deterministic_histogram", "dsplit", "sketch_eps",
    "prob_buffer_row", "lambda_bias",
)
# Objectives whose onnxmltools conversion predicts exactly what the booster does.
_ONNX_OBJECTIVES = frozenset((
    "reg:squarederror", "reg:linear", "reg:squaredlogerror", "reg:pseudohubererror",
    "reg:absoluteerror", "reg:gamma", "reg:tweedie", "count:poisson",
    "binary:logistic", "multi:softmax", "multi:softprob",
))


# -- errors -------------------------------------------------------------------------------------


class ToolkitError(Exception):
    """The container's ``BaseToolkitError``: ``message``, plus ``(caused by X)`` when it has a cause."""

    prefix = "AlgorithmError"
    exit_code = 2

    def __init__(self, message: str, caused_by: BaseException | None = None) -> None:
        if caused_by is not None:
            message = f"{message} (caused by {type(caused_by).__name__})"
        super().__init__(message)
        self.message = message
        self.caused_by = caused_by

    def failure_reason(self) -> str:
        return f"{self.prefix}: {self.message}"


class UserError(ToolkitError):
    """A failure the job's input causes (hyperparameters, channels, data): SageMaker's ClientError."""

    prefix = "ClientError"
    exit_code = 1


class AlgorithmError(ToolkitError):
    pass


# -- hyperparameters ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    """A numeric range printed as the container does: ``[0, 1]``, ``(0, 1]``, ``[0, +inf)``."""

    min_open: float | None = None
    min_closed: float | None = None
    max_open: float | None = None
    max_closed: float | None = None

    def __contains__(self, value: object) -> bool:
        v = float(value)  # type: ignore[arg-type]
        return not (
            (self.min_open is not None and v <= self.min_open)
            or (self.min_closed is not None and v < self.min_closed)
            or (self.max_open is not None and v >= self.max_open)
            or (self.max_closed is not None and v > self.max_closed)
        )

    def __str__(self) -> str:
        if self.min_open is not None:
            low = f"({self.min_open}, "
        elif self.min_closed is not None:
            low = f"[{self.min_closed}, "
        else:
            low = "(-inf, "
        if self.max_open is not None:
            return low + f"{self.max_open})"
        if self.max_closed is not None:
            return low + f"{self.max_closed}]"
        return low + "+inf)"


class Choices(list[Any]):
    """Allowed values, printed like the list they are; ``test`` may widen membership."""

    def __init__(self, values: Iterable[Any], test: Callable[[Any], bool] | None = None) -> None:
        super().__init__(values)
        self._test = test

    def __contains__(self, value: object) -> bool:
        if self._test is not None:
            return self._test(value)
        return list.__contains__(self, value)


@dataclass(frozen=True)
class Hyperparameter:
    name: str
    kind: str  # int | float | categorical | list | tuple | nested
    range: Any = None
    required: bool = False
    depends_on: tuple[str, ...] = ()

    def parse(self, value: Any) -> Any:
        if self.kind == "int":
            if isinstance(value, bool):
                raise ValueError(value)
            if isinstance(value, int):
                return value
            try:
                return int(value)
            except ValueError:
                number = float(value)  # "5.0" from a tuner's integer range
                if not number.is_integer():
                    raise
                return int(number)
        if self.kind == "float":
            return float(value)
        if self.kind == "list":
            return str(value).split(",")
        if self.kind in ("tuple", "nested"):
            parsed = ast.literal_eval(value) if isinstance(value, str) else value
            if self.kind == "tuple":
                if isinstance(parsed, (int, float)):
                    parsed = (parsed,)
                if not isinstance(parsed, (tuple, list)):
                    raise ValueError(value)
                return tuple(parsed)
            if not isinstance(parsed, (list, tuple)) or not all(isinstance(x, (list, tuple)) for x in parsed):
                raise ValueError(value)
            return [list(x) for x in parsed]
        return value if isinstance(value, str) else str(value)

    def validate_range(self, value: Any) -> None:
        if self.range is None:
            return
        if self.kind in ("list", "tuple", "nested"):
            items = [v for outer in value for v in outer] if self.kind == "nested" else value
            if any(v not in self.range for v in items):
                raise UserError(f"Hyperparameter {self.name}: value {value} not in range {self.range}")
        elif value not in self.range:
            raise UserError(f"Hyperparameter {self.name}: {value} is not in {self.range}")


def _eval_metric_in_range(metric: str) -> bool:
    if "<function" in metric:
        raise UserError(f"User defined evaluation metric {metric} is not supported yet.")
    if "@" in metric:
        name, threshold = (part.strip() for part in metric.split("@", 1))
        if name not in ("error", "ndcg", "map"):
            raise UserError(
                f"Metric '{metric}' is not supported. Parameter 'eval_metric' with customized threshold "
                "should be one of these options: 'error', 'ndcg', 'map'."
            )
        try:
            float(threshold.rstrip("-"))
        except ValueError as exc:
            raise UserError(f"Threshold value 't' in '{name}@t' expects float input.") from exc
        return True
    return metric in XGB_MAXIMIZE_METRICS + XGB_MINIMIZE_METRICS


_TREE_METHODS = ["auto", "exact", "approx", "hist", "gpu_hist"]
_OBJECTIVES = [
    "binary:logistic", "binary:logitraw", "binary:hinge", "count:poisson", "multi:softmax",
    "multi:softprob", "rank:pairwise", "rank:ndcg", "rank:map", "reg:linear", "reg:squarederror",
    "reg:logistic", "reg:gamma", "reg:pseudohubererror", "reg:squaredlogerror", "reg:absoluteerror",
    "reg:quantileerror", "reg:tweedie", "survival:aft", "survival:cox",
]
_UPDATERS = [
    "grow_colmaker", "distcol", "grow_histmaker", "grow_local_histmaker", "grow_skmaker", "sync", "refresh",
    "prune", "grow_quantile_histmaker", "shotgun", "coord_descent",
]
_TUNING_METRICS = [f"validation:{m}" for m in XGB_MAXIMIZE_METRICS + XGB_MINIMIZE_METRICS]


def _hyperparameters() -> dict[str, Hyperparameter]:
    """The container's hyperparameter table (algorithm_mode/hyperparameter_validation.py)."""
    hp = Hyperparameter
    table = [
        hp("num_round", "int", Interval(min_closed=1), required=True),
        hp("csv_weights", "int", Interval(min_closed=0, max_closed=1)),
        hp("early_stopping_rounds", "int", Interval(min_closed=1)),
        hp("booster", "categorical", ["gbtree", "gblinear", "dart"]),
        hp("verbosity", "int", Interval(min_closed=0, max_closed=3)),
        hp("nthread", "int", Interval(min_closed=1)),
        hp("eta", "float", Interval(min_closed=0, max_closed=1)),
        hp("gamma", "float", Interval(min_closed=0)),
        hp("max_depth", "int", Interval(min_closed=0)),
        hp("min_child_weight", "float", Interval(min_closed=0)),
        hp("max_delta_step", "float", Interval(min_closed=0)),
        hp("subsample", "float", Interval(min_open=0, max_closed=1)),
        hp("colsample_bytree", "float", Interval(min_open=0, max_closed=1)),
        hp("colsample_bylevel", "float", Interval(min_open=0, max_closed=1)),
        hp("colsample_bynode", "float", Interval(min_open=0, max_closed=1)),
        hp("lambda", "float", Interval(min_closed=0)),
        hp("alpha", "float", Interval(min_closed=0)),
        hp("tree_method", "categorical", Choices(_TREE_METHODS)),
        hp("sketch_eps", "float", Interval(min_open=0, max_open=1)),
        hp("scale_pos_weight", "float", Interval(min_open=0)),
        hp("updater", "list", _UPDATERS, depends_on=("booster", "process_type")),
        hp("dsplit", "categorical", ["row", "col"]),
        hp("refresh_leaf", "int", Interval(min_closed=0, max_closed=1)),
        hp("process_type", "categorical", ["default", "update"]),
        hp("grow_policy", "categorical", ["depthwise", "lossguide"]),
        hp("max_leaves", "int", Interval(min_closed=0)),
        hp("max_bin", "int", Interval(min_closed=0)),
        hp("predictor", "categorical", Choices(["auto", "cpu_predictor", "gpu_predictor"])),
        hp("monotone_constraints", "tuple", [-1, 0, 1], depends_on=("tree_method",)),
        hp("interaction_constraints", "nested", Interval(min_closed=1), depends_on=("tree_method",)),
        hp("sample_type", "categorical", ["uniform", "weighted"]),
        hp("normalize_type", "categorical", ["tree", "forest"]),
        hp("rate_drop", "float", Interval(min_closed=0, max_closed=1)),
        hp("one_drop", "int", Interval(min_closed=0, max_closed=1)),
        hp("skip_drop", "float", Interval(min_closed=0, max_closed=1)),
        hp("lambda_bias", "float", Interval(min_closed=0, max_closed=1)),
        hp("tweedie_variance_power", "float", Interval(min_open=1, max_open=2)),
        hp("objective", "categorical", _OBJECTIVES, depends_on=("num_class",)),
        hp("num_class", "int", Interval(min_closed=2)),
        hp("base_score", "float", Interval(min_closed=0)),
        hp("_kfold", "int", Interval(min_closed=2)),
        hp("_num_cv_round", "int", Interval(min_closed=1)),
        hp("_tuning_objective_metric", "categorical", _TUNING_METRICS),
        hp("eval_metric", "list", Choices(XGB_MAXIMIZE_METRICS + XGB_MINIMIZE_METRICS, _eval_metric_in_range),
           depends_on=("objective",)),
        hp("seed", "int", Interval(min_open=-(2**31), max_open=2**31 - 1)),
        hp("num_parallel_tree", "int", Interval(min_closed=1)),
        hp("save_model_on_termination", "categorical", ["true", "false"]),
        hp("aft_loss_distribution", "categorical", ["normal", "logistic", "extreme"]),
        hp("aft_loss_distribution_scale", "float", Interval(min_closed=0)),
        hp("deterministic_histogram", "categorical", ["true", "false"]),
        hp("sampling_method", "categorical", ["uniform", "gradient_based"]),
        hp("prob_buffer_row", "float", Interval(min_open=1.0)),
        hp("single_precision_histogram", "categorical", ["true", "false"]),
        hp("use_dask_gpu_training", "categorical", ["true", "false"]),
        hp("huber_slope", "float", Interval(min_open=0)),
        hp("quantile_alpha", "float", Interval(min_open=0, max_open=1)),
        hp("max_cat_to_onehot", "int", Interval(min_closed=1)),
    ]
    table_by_name = {h.name: h for h in table}
    for alias, name in (("learning_rate", "eta"), ("min_split_loss", "gamma"), ("reg_lambda", "lambda"),
                        ("reg_alpha", "alpha")):
        table_by_name[alias] = table_by_name[name]
    return table_by_name


HYPERPARAMETERS = _hyperparameters()


def _check_dependencies(name: str, value: Any, known: dict[str, Any]) -> None:
    """The container's dependency validators, for hyperparameter ``name`` given the ones before it."""
    if name == "objective":
        if value in ("multi:softmax", "multi:softprob") and known.get("num_class") is None:
            raise UserError("Require input for parameter 'num_class' for multi-classification")
    elif name == "eval_metric":
        objective = known.get("objective", "reg:squarederror")
        if "auc" in value and not any(objective.startswith(kind) for kind in ("binary:", "rank:")):
            raise UserError("Metric 'auc' can only be applied for classification and ranking problems.")
        if "aft-nloglik" in value and objective != "survival:aft":
            raise UserError("Metric 'aft-nloglik' can only be applied for 'survival:aft' objective.")
    elif name == "monotone_constraints":
        if known.get("tree_method") not in ("exact", "hist"):
            raise UserError(
                "monotone_constraints can be used only when the tree_method parameter is set to "
                "either 'exact' or 'hist'."
            )
    elif name == "interaction_constraints":
        if known.get("tree_method") not in ("exact", "hist", "approx"):
            raise UserError(
                "interaction_constraints can be used only when the tree_method parameter is set to "
                "either 'exact', 'hist' or 'approx'."
            )
    elif name == "updater":
        if known.get("booster") == "gblinear":
            if not (len(value) == 1 and value[0] in ("shotgun", "coord_descent")):
                raise UserError("Linear updater should be one of these options: 'shotgun', 'coord_descent'.")
        elif known.get("process_type") == "update":
            if not all(x in ("refresh", "prune") for x in value):
                raise UserError("process_type 'update' can only be used with updater 'refresh' and 'prune'")
        else:
            build = ("grow_colmaker", "distcol", "grow_histmaker", "grow_local_histmaker",
                     "grow_quantile_histmaker")
            if sum(1 for x in value if x in build) > 1:
                raise UserError(
                    "Only one tree grow plugin can be selected. Choose one from the"
                    "following: 'grow_colmaker', 'distcol', 'grow_histmaker', "
                    "'grow_local_histmaker', 'grow_skmaker'"
                )


def _unquote(value: Any) -> Any:
    """SageMaker's SDK sends some values JSON-encoded (``"\\"reg:squarederror\\""``): decode those."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def validate_hyperparameters(user: dict[str, Any]) -> dict[str, Any]:
    """Validated, typed hyperparameters (canonical names), or :class:`UserError` as the container says it.

    The container's order: required ones first, then each given one is known and parses, then
    each is in range, then the dependencies between them. ``sagemaker_*`` keys (the SDK's and the
    platform's own) are ignored.
    """
    given = {k: _unquote(v) for k, v in user.items() if not k.startswith("sagemaker_")}
    for name, spec in HYPERPARAMETERS.items():
        if spec.required and name not in given and not any(
            HYPERPARAMETERS.get(k) is spec for k in given
        ):
            raise UserError(f"Missing required hyperparameter: {name}")
    parsed: dict[str, Any] = {}
    for name, value in given.items():
        known = HYPERPARAMETERS.get(name)
        if known is None:
            raise UserError(f"Extraneous hyperparameter found: {name}")
        try:
            parsed[known.name] = known.parse(value)
        except (ValueError, SyntaxError, TypeError) as exc:
            raise UserError(f"Hyperparameter {known.name}: could not parse value", caused_by=exc) from exc
    for name, value in parsed.items():
        HYPERPARAMETERS[name].validate_range(value)
    done: dict[str, Any] = {}
    pending = list(parsed)
    while pending:  # dependencies first (the container's topological order)
        for name in list(pending):
            deps = [d for d in HYPERPARAMETERS[name].depends_on if d in parsed and d not in done]
            if not deps:
                _check_dependencies(name, parsed[name], done)
                done[name] = parsed[name]
                pending.remove(name)
    return parsed


# -- content types and channels -------------------------------------------------------------------


def parse_content_type(value: str | None) -> str:
    """``csv``/``libsvm``/``parquet``/``recordio-protobuf`` for a channel's (or request's) ContentType."""
    if value is None:
        raise ValueError("no content type")
    media, _, params = value.lower().partition(";")
    media = media.strip()
    options = {}
    for part in params.split(";"):
        key, sep, val = part.partition("=")
        if sep:
            options[key.strip()] = val.strip().strip('"')
    if media in (CSV, "text/csv"):
        if options.get("label_size", "1") != "1":
            raise UserError(
                f"{value} is not an accepted csv ContentType. "
                "Optional parameter label_size must be equal to 1"
            )
        return CSV
    if media in (LIBSVM, "text/libsvm", "text/x-libsvm"):
        return LIBSVM
    if media in (PARQUET, "application/x-parquet"):
        return PARQUET
    if media in (RECORDIO_PROTOBUF, "application/x-recordio-protobuf"):
        return RECORDIO_PROTOBUF
    raise UserError(f"{value} is not an accepted ContentType: " + ", ".join(VALID_CONTENT_TYPES) + ".")


def data_files(path: Path) -> list[Path]:
    """Every data file under a channel folder (nested folders too), in name order.

    Like the container, files named ``.*`` or ``_*`` (and xgboost cache files) are not data.
    """
    if path.is_file():
        return [path]
    found: list[Path] = []
    for root, dirs, files in os.walk(path, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith((".", "_")) or (".cache" in name and ("dtrain" in name or "dval" in name)):
                continue
            file = Path(root) / name
            if file.is_file() and file.stat().st_size > 0:
                found.append(file)
    return found


def _first_line(file: Path) -> str:
    with file.open("rb") as fh:
        return fh.readline(65536).decode("utf-8", "replace").strip()


def sniff_content_type(files: list[Path]) -> str:
    """A channel without ContentType: Parquet by its magic bytes, LIBSVM when its first line reads
    as LIBSVM, else CSV (the container assumes LIBSVM; Homeport's default is CSV)."""
    if not files:
        return CSV
    with files[0].open("rb") as fh:
        if fh.read(4) == b"PAR1":
            return PARQUET
    line = _first_line(files[0])
    tokens = line.split()
    if len(tokens) > 1 and all(":" in t for t in tokens[1:]) and "," not in line:
        return LIBSVM
    return CSV


def csv_delimiter(line: str) -> str:
    """The delimiter of a CSV line (the container sniffs it with ``csv.Sniffer``)."""
    for candidate in (",", "\t", ";", "|"):
        if candidate in line:
            return candidate
    if " " in line.strip():
        return " "
    return ","


# -- data loading -----------------------------------------------------------------------------------


@dataclass
class Dataset:
    features: Any  # numpy 2-D float32 array or scipy CSR matrix; None when ``dmatrix`` is set
    label: Any
    weight: Any = None
    dmatrix: Any = None

    def to_dmatrix(self) -> xgb.DMatrix:
        import xgboost as xgb

        if self.dmatrix is not None:
            return self.dmatrix
        return xgb.DMatrix(self.features, label=self.label, weight=self.weight, nthread=-1)

    @property
    def num_row(self) -> int:
        return int(self.dmatrix.num_row() if self.dmatrix is not None else self.features.shape[0])


def _split_columns(columns: list[Any], rows: int, csv_weights: int) -> Dataset:
    """Label (column 0), optional weight (column 1) and features, each filled in one pass."""
    import numpy as np

    skip = 2 if csv_weights == 1 else 1
    if len(columns) <= skip - 1:
        raise UserError("Got input data without labels. Please check the input data set.")
    label = np.empty(rows, dtype=np.float32)
    weight = np.empty(rows, dtype=np.float32) if skip == 2 else None
    features = np.empty((rows, max(len(columns) - skip, 0)), dtype=np.float32)
    offset = 0
    for part in columns[0]:
        label[offset:offset + len(part)] = part
        offset += len(part)
    if weight is not None:
        offset = 0
        for part in columns[1]:
            weight[offset:offset + len(part)] = part
            offset += len(part)
    for j, column in enumerate(columns[skip:]):
        offset = 0
        for part in column:
            features[offset:offset + len(part), j] = part
            offset += len(part)
    return Dataset(features, label, weight)


def _arrow_numpy(chunked: Any) -> list[Any]:
    """The chunks of a pyarrow column as float64 numpy arrays (nulls as NaN), zero-copy when it can."""
    import numpy as np
    import pyarrow as pa

    parts = []
    for chunk in chunked.chunks:
        if not pa.types.is_floating(chunk.type) and not pa.types.is_integer(chunk.type):
            if pa.types.is_boolean(chunk.type) or pa.types.is_null(chunk.type):
                chunk = chunk.cast(pa.float64())
            else:
                raise UserError(f"Non-numeric column of type {chunk.type} in the input data")
        parts.append(chunk.to_numpy(zero_copy_only=False).astype(np.float64, copy=False))
    return parts


def load_csv(files: list[Path], csv_weights: int = 0) -> Dataset:
    """CSV files (label first, no header) → one float32 matrix, parsed once (pyarrow, else numpy)."""
    delimiter = csv_delimiter(_first_line(files[0]))
    log.info("Determined delimiter of CSV input is '%s'", delimiter)
    try:
        import pyarrow as pa
        import pyarrow.csv as pcsv
    except ImportError:  # pragma: no cover - the image has pyarrow
        return _load_csv_numpy(files, delimiter, csv_weights)
    ncols = len(_first_line(files[0]).split(delimiter))
    names = [f"c{i}" for i in range(ncols)]
    read_options = pcsv.ReadOptions(column_names=names, block_size=1 << 22)
    parse_options = pcsv.ParseOptions(delimiter=delimiter)
    convert_options = pcsv.ConvertOptions(column_types={n: pa.float64() for n in names})
    columns: list[list[Any]] = [[] for _ in range(ncols)]
    rows = 0
    for file in files:
        try:
            table = pcsv.read_csv(file, read_options=read_options, parse_options=parse_options,
                                  convert_options=convert_options)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
            raise UserError(f"Failed to load csv data with exception:\n{exc}") from exc
        for j in range(ncols):
            columns[j].extend(_arrow_numpy(table.column(j)))
        rows += table.num_rows
    return _split_columns(columns, rows, csv_weights)


def _load_csv_numpy(files: list[Path], delimiter: str, csv_weights: int) -> Dataset:  # pragma: no cover
    import numpy as np

    try:
        parts = [np.loadtxt(f, delimiter=delimiter, dtype=np.float64, ndmin=2) for f in files]
    except ValueError as exc:
        raise UserError(f"Failed to load csv data with exception:\n{exc}") from exc
    data = parts[0] if len(parts) == 1 else np.vstack(parts)
    columns = [[data[:, j]] for j in range(data.shape[1])]
    return _split_columns(columns, data.shape[0], csv_weights)


def load_parquet(files: list[Path]) -> Dataset:
    """Parquet files: the first column is the label, the others the features."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns: list[list[Any]] = []
    rows = 0
    for file in files:
        try:
            table = pq.read_table(file)
        except (pa.ArrowInvalid, OSError) as exc:
            raise UserError(f"Failed to load parquet data with exception:\n{exc}") from exc
        if not columns:
            columns = [[] for _ in range(table.num_columns)]
        if table.num_columns != len(columns):
            raise UserError(
                f"Failed to load parquet data with exception:\n{file.name} has {table.num_columns} columns, "
                f"expected {len(columns)}"
            )
        for j in range(table.num_columns):
            columns[j].extend(_arrow_numpy(table.column(j)))
        rows += table.num_rows
    return _split_columns(columns, rows, 0)


def parse_libsvm(text: str, with_label: bool = True) -> tuple[Any, Any, Any]:
    """LIBSVM text → (CSR features, labels, weights or None). Tokens without ``:`` in feature
    position are skipped; ``label:weight`` sets a weight; ``qid:N`` is ignored."""
    import numpy as np
    import scipy.sparse as sp

    labels: list[float] = []
    weights: list[float] = []
    indptr = [0]
    cols: list[int] = []
    vals: list[float] = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        tokens = line.split()
        if with_label:
            head = tokens[0].split(":")
            labels.append(float(head[0]))
            if len(head) > 1:
                weights.append(float(head[1]))
            tokens = tokens[1:]
        for token in tokens:
            index, sep, value = token.partition(":")
            if not sep or index == "qid":
                continue
            cols.append(int(index))
            vals.append(float(value))
        indptr.append(len(cols))
    ncols = (max(cols) + 1) if cols else 0
    arrays = (np.asarray(vals, dtype=np.float32), np.asarray(cols, dtype=np.int64),
              np.asarray(indptr, dtype=np.int64))
    matrix = sp.csr_matrix(arrays, shape=(len(indptr) - 1, ncols))
    label = np.asarray(labels, dtype=np.float32) if with_label else None
    weight = np.asarray(weights, dtype=np.float32) if weights and len(weights) == len(labels) else None
    return matrix, label, weight


def load_libsvm(files: list[Path]) -> Dataset:
    """LIBSVM files, read by xgboost's own parser (the container's); every file of the channel."""
    import xgboost as xgb

    with tempfile.TemporaryDirectory(prefix="homeport-xgb-libsvm-") as tmp:
        if len(files) == 1:
            source = files[0]
        else:  # xgboost reads a folder's files: link them side by side, as the container does
            source = Path(tmp)
            for i, file in enumerate(files):
                os.symlink(file.resolve(), source / f"{i:06d}-{file.name}")
        try:
            with warnings.catch_warnings(), xgb.config_context(verbosity=0):  # "text input deprecated"
                warnings.simplefilter("ignore")
                return Dataset(None, None, dmatrix=xgb.DMatrix(f"{source}?format=libsvm"))
        except xgb.core.XGBoostError:
            pass  # text input removed from this xgboost: parse in Python
    try:
        text = "\n".join(f.read_text(encoding="utf-8") for f in files)
        matrix, label, weight = parse_libsvm(text)
    except ValueError as exc:
        raise UserError(f"Failed to load libsvm data with exception:\n{exc}") from exc
    return Dataset(matrix, label, weight)


def load_channel(path: Path, content_type: str, csv_weights: int = 0) -> Dataset | None:
    """The channel's data, or None when the channel has no data files."""
    files = data_files(path)
    if not files:
        return None
    if content_type == CSV:
        dataset = load_csv(files, csv_weights)
    elif content_type == LIBSVM:
        dataset = load_libsvm(files)
    elif content_type == PARQUET:
        dataset = load_parquet(files)
    else:
        raise UserError(
            f"Content type {content_type} is not supported by Homeport's XGBoost algorithm "
            "(use text/csv, text/libsvm or application/x-parquet)"
        )
    if dataset.dmatrix is None and (dataset.label is None or dataset.label.size == 0):
        raise UserError(
            "Got input data without labels. Please check the input data set. If training job is running on "
            "multiple instances, please switch to using single instance if number of records in the data set "
            "is less than number of workers (16 * number of instance) in the cluster."
        )
    return dataset


# -- metrics computed by the container, not by xgboost ---------------------------------------------


def _class_labels(preds: np.ndarray, objective: str) -> np.ndarray:
    import numpy as np

    if preds.ndim == 2:
        return np.argmax(preds, axis=1)
    if objective == "multi:softmax":
        return np.rint(preds).astype(np.int64)
    threshold = 0.0 if objective == "binary:logitraw" else 0.5
    return (preds > threshold).astype(np.int64)


def _precision_recall(labels: np.ndarray, predicted: np.ndarray, average: str) -> tuple[float, float, float]:
    """(precision, recall, f1) as scikit-learn computes them for ``average`` (zero division → 0)."""
    import numpy as np

    classes = np.union1d(labels, predicted)
    if average == "binary":
        if len(np.setdiff1d(classes, [0, 1])):
            raise UserError(
                "Target is multiclass but average='binary'. Please choose another average setting."
            )
        classes = np.array([1])
    if average == "micro":
        correct = float(np.sum(labels == predicted))
        total = float(len(labels)) or 1.0
        p = r = correct / total
        return p, r, (2 * p * r / (p + r) if p + r else 0.0)
    ps, rs, fs = [], [], []
    for c in classes:
        tp = float(np.sum((predicted == c) & (labels == c)))
        fp = float(np.sum((predicted == c) & (labels != c)))
        fn = float(np.sum((predicted != c) & (labels == c)))
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        ps.append(p)
        rs.append(r)
        fs.append(2 * p * r / (p + r) if p + r else 0.0)
    return float(np.mean(ps)), float(np.mean(rs)), float(np.mean(fs))


def _custom_metric(name: str, preds: np.ndarray, labels: np.ndarray, objective: str) -> float:
    import numpy as np

    if name == "mse":
        values = preds if preds.ndim == 1 else _class_labels(preds, objective)
        return float(np.mean((labels - values) ** 2))
    if name == "r2":
        values = preds if preds.ndim == 1 else _class_labels(preds, objective)
        total = float(np.sum((labels - labels.mean()) ** 2))
        residual = float(np.sum((labels - values) ** 2))
        return 1.0 - residual / total if total else 0.0
    predicted = _class_labels(preds, objective)
    truth = labels.astype(np.int64)
    if name == "accuracy":
        return float(np.mean(predicted == truth))
    if name == "balanced_accuracy":
        recalls = [float(np.mean(predicted[truth == c] == c)) for c in np.unique(truth)]
        return float(np.mean(recalls))
    metric, _, average = name.partition("_")
    if not average:  # f1 / precision / recall: binary for 0/1 labels, else macro
        average = "binary" if not len(np.setdiff1d(np.union1d(truth, predicted), [0, 1])) else "macro"
    p, r, f = _precision_recall(truth, predicted, average)
    return {"precision": p, "recall": r, "f1": f}[metric]


CUSTOM_METRICS = (
    "accuracy", "balanced_accuracy", "f1", "f1_binary", "f1_macro", "mse", "precision", "precision_macro",
    "precision_micro", "r2", "recall", "recall_macro", "recall_micro",
)


def custom_metric_fn(names: list[str], objective: str) -> Callable[[Any, Any], list[tuple[str, float]]]:
    def evaluate(preds: Any, dmatrix: Any) -> list[tuple[str, float]]:
        labels = dmatrix.get_label()
        return [(name, _custom_metric(name, preds, labels, objective)) for name in names]

    return evaluate


# -- training ---------------------------------------------------------------------------------------


def base_dir() -> Path:
    return Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"))


def _read_json(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return default
    except ValueError as exc:
        raise UserError(f"{path.name} is not valid JSON: {exc}") from exc


def _print_line(message: str) -> None:
    """One evaluation line on stdout, flushed (real tabs: CloudWatch shows them as ``#011``)."""
    out = sys.stdout
    out.write(message.rstrip("\n") + "\n")
    out.flush()


class _Loader(threading.Thread):
    """Runs ``load`` in a thread; :meth:`result` joins it and returns its value or raises its error."""

    def __init__(self, load: Callable[[], Any]) -> None:
        super().__init__(name="channel-loader", daemon=True)
        self._load = load
        self._value: Any = None
        self._error: BaseException | None = None

    def run(self) -> None:
        try:
            self._value = self._load()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            self._error = exc

    def result(self) -> Any:
        self.join()
        if self._error is not None:
            raise self._error
        return self._value


class _Preload(threading.Thread):
    """Imports the ONNX converter while xgboost trains (training releases the GIL)."""

    def __init__(self) -> None:
        super().__init__(name="onnx-preload", daemon=True)
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import onnxmltools.convert  # noqa: F401
                from onnxmltools.convert.common.data_types import FloatTensorType  # noqa: F401
                from onnxmltools.convert.xgboost import convert  # noqa: F401
        except BaseException as exc:  # noqa: BLE001 - reported when the export runs
            self.error = exc


def booster_objective(booster: xgb.Booster) -> tuple[str, int]:
    config = json.loads(booster.save_config())
    learner = config["learner"]
    objective = learner["objective"]["name"]
    num_class = int(float(learner["learner_model_param"].get("num_class", "0") or 0))
    return objective, num_class


def export_onnx(
    booster: xgb.Booster, model_dir: Path, num_features: int, booster_kind: str = "gbtree"
) -> bool:
    """Write ``model.onnx`` when the objective converts exactly; otherwise log why not, never fail."""
    objective, _ = booster_objective(booster)
    if booster_kind != "gbtree" or objective not in _ONNX_OBJECTIVES:
        log.warning("model.onnx not written: no exact ONNX conversion for booster=%s objective=%s",
                    booster_kind, objective)
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from onnxmltools.convert import convert_xgboost
            from onnxmltools.convert.common.data_types import FloatTensorType

            dumps: dict[Any, Any] = {}
            get_dump = booster.get_dump

            def cached_dump(*args: Any, **kwargs: Any) -> Any:  # onnxmltools dumps the trees 3 times
                key = (args, tuple(sorted(kwargs.items())))
                if key not in dumps:
                    dumps[key] = get_dump(*args, **kwargs)
                return dumps[key]

            booster.get_dump = cached_dump  # type: ignore[method-assign]
            try:
                model = convert_xgboost(
                    booster, initial_types=[(ONNX_INPUT, FloatTensorType([None, num_features]))]
                )
            finally:
                del booster.get_dump
        (model_dir / ONNX_NAME).write_bytes(model.SerializeToString())
    except Exception as exc:  # noqa: BLE001 - an optional export never fails the job
        log.warning("model.onnx not written: %s: %s", type(exc).__name__, exc)
        return False
    return True


def _checkpoint_dir(base: Path) -> Path | None:
    """CheckpointConfig's LocalPath (default /opt/ml/checkpoints), under the base folder like /opt/ml."""
    config = _read_json(base / "input" / "config" / "checkpointconfig.json", None)
    if not config:
        return None
    local = str(config.get("LocalPath") or "/opt/ml/checkpoints")
    if local == "/opt/ml" or local.startswith("/opt/ml/"):
        return base / local[len("/opt/ml"):].lstrip("/")
    return Path(local)


def _load_checkpoint(directory: Path | None) -> tuple[Path | None, int]:
    if directory is None or not directory.is_dir():
        return None, 0
    found = []
    for file in directory.iterdir():
        stem, _, suffix = file.name.partition(f"{CHECKPOINT_NAME}.")
        if not stem and suffix.isdigit():
            found.append((int(suffix), file))
    if not found:
        return None, 0
    latest, path = max(found)
    return path, latest + 1


def _checkpoint_callback(directory: Path, start: int, keep: int = 5) -> Any:
    import xgboost as xgb

    class SaveCheckpoint(xgb.callback.TrainingCallback):
        """``xgboost-checkpoint.<round>`` after every round, the last ``keep`` kept (managed spot)."""

        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            number = start + epoch
            tmp = directory / f".{CHECKPOINT_NAME}.{number}.tmp"
            model.save_model(str(tmp.with_suffix(".ubj")))
            os.replace(tmp.with_suffix(".ubj"), directory / f"{CHECKPOINT_NAME}.{number}")
            stale = directory / f"{CHECKPOINT_NAME}.{number - keep}"
            if stale.exists():
                stale.unlink()
            return False

    directory.mkdir(parents=True, exist_ok=True)
    return SaveCheckpoint()


def import_xgboost() -> Any:
    """``import xgboost`` without its scikit-learn integration, in the algorithm's own process.

    ``xgboost.compat`` imports scikit-learn when it is installed (it is in the image, for script
    mode and the ONNX converter), and scikit-learn imports ``scipy.stats``: ~0.9 s of a ~1.2 s import,
    for the ``XGBClassifier``-style API the algorithm never uses. Hiding scikit-learn while xgboost
    is first imported skips that; it is importable again right after (the ONNX converter imports
    it). Script mode and serving import xgboost normally.
    """
    if "xgboost" in sys.modules:
        import xgboost

        return xgboost
    hidden = "sklearn" not in sys.modules
    if hidden:
        sys.modules["sklearn"] = None  # type: ignore[assignment]  # `import sklearn` raises ImportError
    try:
        import xgboost
    finally:
        if hidden and sys.modules.get("sklearn", False) is None:
            del sys.modules["sklearn"]
    return xgboost


def _train_error(exc: Exception) -> ToolkitError:
    text = str(exc).split("\nStack trace:", 1)[0].strip()  # xgboost's C++ backtrace says nothing to users
    if any(message in text for message in CUSTOMER_ERRORS):
        return UserError(text)
    return AlgorithmError(f"XGB train call failed with exception:\n {text}")


def _channels(base: Path) -> dict[str, dict[str, Any]]:
    config = _read_json(base / "input" / "config" / "inputdataconfig.json", None)
    if config is None:  # no configuration: the folders that exist
        data = base / "input" / "data"
        config = {p.name: {} for p in data.iterdir() if p.is_dir()} if data.is_dir() else {}
    return {str(k): dict(v or {}) for k, v in config.items()}


def run(base: Path | None = None) -> None:
    """Algorithm mode, in-process: validate, load, train, save. Raises :class:`ToolkitError`."""
    started = time.monotonic()
    base = base or base_dir()
    raw = _read_json(base / "input" / "config" / "hyperparameters.json", {})
    params = validate_hyperparameters(raw)
    channels = _channels(base)
    if "train" not in channels:
        raise UserError("Missing required channel: train")
    for extra in sorted(set(channels) - {"train", "validation", "code"}):
        log.warning("Channel '%s' is not used by the XGBoost algorithm", extra)
    if "_kfold" in params or "_num_cv_round" in params:
        raise UserError(
            "Hyperparameters _kfold/_num_cv_round: cross-validation mode is not supported by Homeport"
        )

    num_round = params.pop("num_round")
    csv_weights = params.pop("csv_weights", 0)
    early_stopping_rounds = params.pop("early_stopping_rounds", None)
    tuning = params.pop("_tuning_objective_metric", None)
    params.pop("save_model_on_termination", None)
    if params.pop("use_dask_gpu_training", "false") == "true":
        log.warning("use_dask_gpu_training: Homeport trains on CPU, on one node")
    for name in _REMOVED_PARAMS:
        if params.pop(name, None) is not None:
            log.info("Hyperparameter %s is not used by this XGBoost version", name)
    if params.get("tree_method") == "gpu_hist":
        log.warning("tree_method gpu_hist: Homeport's XGBoost image trains on CPU, using hist")
        params["tree_method"] = "hist"
    if params.get("objective") == "reg:linear":
        params["objective"] = "reg:squarederror"  # the same loss, under its current name
    for key in ("updater",):
        if key in params:
            params[key] = ",".join(params[key])
    for key in ("monotone_constraints", "interaction_constraints"):
        if key in params:  # xgboost reads them from their text: "(1,-1)", "[[0, 1], [2]]"
            params[key] = str(_unquote(raw[key]))

    # Metrics: xgboost's own via eval_metric, the container's (accuracy, f1, mse, ...) computed here.
    eval_metric: list[str] = list(params.pop("eval_metric", []) or [])
    tuning_metric = tuning.split(":", 1)[1] if tuning else None
    wanted = list(dict.fromkeys(eval_metric + ([tuning_metric] if tuning_metric else [])))
    native = [m for m in wanted if m not in CUSTOM_METRICS]
    custom = [m for m in wanted if m in CUSTOM_METRICS]
    if native:
        params["eval_metric"] = native
    objective = params.get("objective", "reg:squarederror")

    train_cfg = channels["train"]
    train_ct = train_cfg.get("ContentType")
    train_path = base / "input" / "data" / "train"
    files = data_files(train_path) if train_path.exists() else []
    train_type = parse_content_type(train_ct) if train_ct else sniff_content_type(files)
    val_path = base / "input" / "data" / "validation"
    val_cfg = channels.get("validation")
    val_type = train_type
    if val_cfg is not None and val_cfg.get("ContentType"):
        val_type = parse_content_type(val_cfg.get("ContentType"))
    if train_cfg.get("TrainingInputMode", "File") not in ("File", "FastFile"):
        raise UserError("Pipe mode is not supported by Homeport's XGBoost algorithm: use File mode")

    # The channels are parsed (pyarrow: native threads, mostly without the GIL) while xgboost is
    # imported: one hides the other where there are cores to spare.
    import numpy  # noqa: F401 - imported once here rather than by both threads at the same time

    loader = _Loader(lambda: (
        load_channel(train_path, train_type, csv_weights) if files else None,
        load_channel(val_path, val_type, csv_weights) if val_cfg is not None and val_path.exists() else None,
    ))
    loader.start()
    xgb = import_xgboost()

    train_data, val_data = loader.result()
    if train_data is None:
        raise UserError(f"No data in training channel path {train_path}")
    if val_cfg is not None and val_data is None:
        raise UserError(f"No data in validation channel path {val_path}")
    preload = _Preload()
    preload.start()
    dtrain = train_data.to_dmatrix()
    dval = val_data.to_dmatrix() if val_data is not None else None
    log.info("Train matrix has %d rows and %d columns", dtrain.num_row(), dtrain.num_col())
    if dval is not None:
        log.info("Validation matrix has %d rows", dval.num_row())

    watchlist = [(dtrain, "train")]
    if dval is not None:
        watchlist.append((dval, "validation"))
    callbacks: list[Any] = [xgb.callback.EvaluationMonitor(logger=_print_line)]

    checkpoint_dir = _checkpoint_dir(base)
    checkpoint, start = _load_checkpoint(checkpoint_dir)
    xgb_model = None
    if checkpoint is not None:
        xgb_model = xgb.Booster()
        xgb_model.load_model(bytearray(checkpoint.read_bytes()))
        log.info("Checkpoint loaded from %s", checkpoint)
        log.info("Resuming from iteration %s", start)
    if checkpoint_dir is not None:
        callbacks.append(_checkpoint_callback(checkpoint_dir, start))

    if early_stopping_rounds and dval is not None:
        metric = tuning_metric or (eval_metric[-1] if eval_metric else None)
        maximize = None
        if metric is not None:
            maximize = metric in XGB_MAXIMIZE_METRICS or metric.split("@")[0] in ("aucpr", "map", "ndcg")
        callbacks.append(xgb.callback.EarlyStopping(
            rounds=early_stopping_rounds, data_name="validation", metric_name=metric,
            maximize=maximize, save_best=params.get("booster", "gbtree") != "gblinear",
        ))

    try:
        booster = xgb.train(
            params, dtrain, num_boost_round=max(num_round - start, 0), evals=watchlist,
            custom_metric=custom_metric_fn(custom, objective) if custom else None,
            callbacks=callbacks, xgb_model=xgb_model, verbose_eval=False,
        )
    except UserError:
        raise
    except xgb.core.XGBoostError as exc:
        raise _train_error(exc) from exc
    except ValueError as exc:
        raise _train_error(exc) from exc

    model_dir = base / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    # JSON: what every xgboost since 1.0 loads from ``xgboost-model`` (the 1.5-1/1.7-1 containers
    # too, which tell it by its first byte), and what xgboost >= 3.1 still loads; the containers'
    # own old binary format is neither.
    booster.save_model(str(model_dir / f"{MODEL_NAME}.json"))
    os.replace(model_dir / f"{MODEL_NAME}.json", model_dir / MODEL_NAME)
    log.debug("Stored trained model at %s", model_dir / MODEL_NAME)

    preload.join()
    if preload.error is not None:
        log.warning("model.onnx not written: the ONNX converter cannot be imported: %s", preload.error)
    else:
        export_onnx(booster, model_dir, dtrain.num_col(), params.get("booster", "gbtree"))
    log.info("Training finished in %.2f s", time.monotonic() - started)


def write_failure(base: Path, reason: str) -> None:
    output = base / "output"
    output.mkdir(parents=True, exist_ok=True)
    (output / "failure").write_text(reason, encoding="utf-8")


def algorithm_main(base: Path | None = None) -> int:
    """Run the algorithm; on failure write ``output/failure`` and return a non-zero code."""
    base = base or base_dir()
    try:
        run(base)
    except ToolkitError as exc:
        log.error(exc.message)
        write_failure(base, exc.failure_reason())
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - any other failure is the algorithm's
        text = "".join(traceback.format_exception(exc))
        log.error(text)
        write_failure(base, f"AlgorithmError: framework error: \n{text}\n{exc}")
        return 2
    return 0


def _setup_logging() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, stream=sys.stderr,
            format="[%(asctime)s:%(levelname)s] %(message)s", datefmt="%Y-%m-%d:%H:%M:%S",
        )


def is_script_mode(base: Path) -> bool:
    hps = _read_json(base / "input" / "config" / "hyperparameters.json", {})
    return isinstance(hps, dict) and "sagemaker_program" in hps


def main(fast_exit: bool = False) -> int:
    """The image's ``train``: script mode through the toolkit, else the algorithm.

    With ``fast_exit`` (the ``train`` script) the algorithm's process ends with ``os._exit`` once its
    files are written and its output flushed: the interpreter's teardown (unloading xgboost,
    scikit-learn, pyarrow; ~0.2-0.3 s) is not work a training job needs to wait for.
    """
    base = base_dir()
    try:
        script_mode = is_script_mode(base)
    except UserError as exc:
        write_failure(base, exc.failure_reason())
        return exc.exit_code
    if script_mode:
        from homeport_toolkit.training import main as toolkit_main

        return int(toolkit_main())
    _setup_logging()
    log.info("Running XGBoost Sagemaker in algorithm mode")
    code = algorithm_main(base)
    if fast_exit:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
