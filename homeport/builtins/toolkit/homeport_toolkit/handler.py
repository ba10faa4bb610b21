"""The sagemaker-inference handler contract: which functions serve, and the invocation pipeline.

Functions are looked up, by name, in the user's inference module first, then in the image's
default handler module, then among the toolkit's defaults (:data:`TOOLKIT_DEFAULTS`):

* ``model_fn(model_dir)`` loads the model (the toolkit's default raises: some module must
  provide it); optional ``pre_model_fn(model_dir)`` runs before it and
  ``model_warmup_fn(model_dir, model)`` after it;
* then either ``transform_fn(model, data, content_type, accept)``, or the trio
  ``input_fn(data, content_type)`` → ``predict_fn(data, model)`` → ``output_fn(prediction, accept)``.
  A module defining ``transform_fn`` together with any of the trio is refused (``ValueError``).
  When the user's module defines ``transform_fn`` it serves; when it defines any of the trio the
  trio serves (missing members from the default module, else the toolkit); when it defines
  neither, the default module's choice applies the same way.

Every function may take one extra trailing ``context`` argument (a :class:`Context`); the arity is
read once, at startup, and anything else is a ``TypeError`` then rather than per request.

A handler may return ``(body, content_type)``; otherwise the response's content type is the
accept type (the first one, when the header lists several). ``Accept`` missing or ``*/*``
means ``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT`` (default ``application/json``). JSON and CSV
bodies are passed as ``str``.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from . import content, paths
from .errors import InferenceError

log = logging.getLogger("homeport_toolkit")

PROGRAM_ENV = "SAGEMAKER_PROGRAM"
SUBMIT_DIR_ENV = "SAGEMAKER_SUBMIT_DIRECTORY"
DEFAULT_ACCEPT_ENV = "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"
DEFAULT_USER_MODULE = "inference"

TRIO = ("input_fn", "predict_fn", "output_fn")
NAMES = ("pre_model_fn", "model_fn", "model_warmup_fn", "transform_fn", *TRIO)
# How many arguments each function takes without the trailing context.
ARITY = {
    "pre_model_fn": 1,
    "model_fn": 1,
    "model_warmup_fn": 2,
    "transform_fn": 4,
    "input_fn": 2,
    "predict_fn": 2,
    "output_fn": 2,
}

Response = tuple[int, bytes, str]


# -- the toolkit's defaults --------------------------------------------------------------------


def default_model_fn(model_dir: str) -> Any:
    raise NotImplementedError(
        "Please provide a model_fn(model_dir) implementation in your inference script "
        f"(SAGEMAKER_PROGRAM, in {paths.serving_code_dir()}); it loads the model from {model_dir}"
    )


def default_input_fn(data: Any, content_type: str | None) -> Any:
    return content.decode(data, content_type)


def default_predict_fn(data: Any, model: Any) -> Any:
    """``model.predict(data)``, else ``model(data)``."""
    predict = getattr(model, "predict", None)
    if callable(predict):
        return predict(data)
    if callable(model):
        return model(data)
    raise NotImplementedError(
        f"Please provide a predict_fn(data, model) implementation: the model ({type(model).__name__}) "
        "has no predict method and is not callable"
    )


def default_output_fn(prediction: Any, accept: str) -> tuple[bytes, str]:
    return content.encode_for_accept(prediction, accept)


TOOLKIT_DEFAULTS: dict[str, Callable[..., Any]] = {
    "model_fn": default_model_fn,
    "input_fn": default_input_fn,
    "predict_fn": default_predict_fn,
    "output_fn": default_output_fn,
}


# -- resolution --------------------------------------------------------------------------------


@dataclass
class Context:
    """The trailing ``context`` argument: fixed facts about this worker (no per-request state).

    ``system_properties`` mirrors the keys handlers read from multi-model-server's context.
    """

    model_dir: str
    system_properties: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.system_properties.setdefault("model_dir", self.model_dir)
        self.system_properties.setdefault("gpu_id", None)


@dataclass
class Handlers:
    """The functions that serve, each with where it came from ("user", "default", "toolkit")."""

    functions: dict[str, Callable[..., Any]]
    origins: dict[str, str]

    def uses_transform_fn(self) -> bool:
        return "transform_fn" in self.functions


def _defined(module: ModuleType | None) -> dict[str, Callable[..., Any]]:
    if module is None:
        return {}
    found = {}
    for name in NAMES:
        value = getattr(module, name, None)
        if value is not None:
            if not callable(value):
                raise TypeError(f"{name} in module {module.__name__} is not callable")
            found[name] = value
    if "transform_fn" in found and any(name in found for name in TRIO):
        raise ValueError(
            f"Cannot use transform_fn implementation in conjunction with input_fn, predict_fn, "
            f"and/or output_fn implementation (module {module.__name__})"
        )
    return found


def resolve(user: ModuleType | None, default: ModuleType | None = None) -> Handlers:
    """Pick the serving functions from the user's module, the image's default module, the toolkit."""
    layers = (("user", _defined(user)), ("default", _defined(default)), ("toolkit", TOOLKIT_DEFAULTS))
    functions: dict[str, Callable[..., Any]] = {}
    origins: dict[str, str] = {}

    def take(name: str) -> None:
        for origin, found in layers:
            if name in found:
                functions[name] = found[name]
                origins[name] = origin
                return

    for name in ("pre_model_fn", "model_fn", "model_warmup_fn"):
        take(name)
    # The first layer that says how to transform decides: transform_fn or the trio.
    for _origin, found in layers[:2]:
        if "transform_fn" in found:
            take("transform_fn")
            break
        if any(name in found for name in TRIO):
            break
    if "transform_fn" not in functions:
        for name in TRIO:
            take(name)
    return Handlers(functions, origins)


def _takes_context(name: str, func: Callable[..., Any]) -> bool:
    """Whether ``func`` takes the trailing context argument (decided once, at startup)."""
    expected = ARITY[name]
    try:
        parameters = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return False  # a builtin without a signature: call it plainly
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters):
        return False
    count = len(parameters)
    if count == expected:
        return False
    if count == expected + 1:
        return True
    raise TypeError(
        f"{name} takes {count} arguments but {expected} (or {expected + 1} with context) are expected"
    )


def bind(name: str, func: Callable[..., Any], context: Context) -> Callable[..., Any]:
    """``func`` as a callable of exactly ARITY[name] positional arguments."""
    if not _takes_context(name, func):
        return func
    arity = ARITY[name]
    if arity == 1:
        return lambda a: func(a, context)
    if arity == 2:
        return lambda a, b: func(a, b, context)
    return lambda a, b, c, d: func(a, b, c, d, context)


# -- modules -----------------------------------------------------------------------------------


def user_code_dir() -> Path:
    """``SAGEMAKER_SUBMIT_DIRECTORY`` when it is a local folder, else ``<base>/model/code``."""
    submit = os.environ.get(SUBMIT_DIR_ENV, "")
    if submit and "://" not in submit and Path(submit).is_dir():
        return Path(submit)
    return paths.serving_code_dir()


def user_module_name() -> str | None:
    """The module ``SAGEMAKER_PROGRAM`` names; else ``inference`` when the code folder has one."""
    program = os.environ.get(PROGRAM_ENV, "").strip()
    if program:
        return program[:-3] if program.endswith(".py") else program
    if (user_code_dir() / f"{DEFAULT_USER_MODULE}.py").is_file():
        return DEFAULT_USER_MODULE
    return None


def load_user_module() -> ModuleType | None:
    name = user_module_name()
    if name is None:
        return None
    folder = user_code_dir()
    relative = Path(*name.split("."))
    if not (folder / f"{relative}.py").is_file() and not (folder / relative / "__init__.py").is_file():
        raise FileNotFoundError(
            f"{PROGRAM_ENV}={os.environ.get(PROGRAM_ENV) or DEFAULT_USER_MODULE + '.py'}: "
            f"there is no {relative}.py in {folder}"
        )
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    return importlib.import_module(name)


def load_default_module(name: str | None) -> ModuleType | None:
    return importlib.import_module(name) if name else None


# -- the pipeline ------------------------------------------------------------------------------


class Transformer:
    """Loads the model once, then answers invocations through the resolved functions."""

    def __init__(
        self, handlers: Handlers, model_dir: str | None = None, default_accept: str | None = None
    ) -> None:
        self.handlers = handlers
        self.model_dir = model_dir or str(paths.model_dir())
        self.context = Context(self.model_dir)
        self.default_accept = default_accept or os.environ.get(DEFAULT_ACCEPT_ENV) or content.JSON
        self.model: Any = None
        self.loaded = False
        fns = {name: bind(name, fn, self.context) for name, fn in handlers.functions.items()}
        self._fns = fns
        if "transform_fn" in fns:
            self._transform: Callable[[Any, Any, str | None, str], Any] = fns["transform_fn"]
        else:
            input_fn, predict_fn, output_fn = fns["input_fn"], fns["predict_fn"], fns["output_fn"]

            def trio(model: Any, data: Any, content_type: str | None, accept: str) -> Any:
                return output_fn(predict_fn(input_fn(data, content_type), model), accept)

            self._transform = trio

    def load(self) -> Any:
        """pre_model_fn, model_fn, model_warmup_fn: once per worker, at startup."""
        fns = self._fns
        if "pre_model_fn" in fns:
            fns["pre_model_fn"](self.model_dir)
        self.model = fns["model_fn"](self.model_dir)
        if "model_warmup_fn" in fns:
            fns["model_warmup_fn"](self.model_dir, self.model)
        self.loaded = True
        return self.model

    def invoke(self, body: bytes, content_type: str | None, accept: str | None) -> Response:
        """(status, body, content type) for one request; never raises."""
        if not accept or accept == content.ANY:
            accept = self.default_accept
        try:
            data: str | bytes = body
            if content_type is not None and content.media_type(content_type) in content.UTF8_TYPES:
                try:
                    data = body.decode("utf-8")
                except UnicodeDecodeError as exc:
                    return 400, f"The body is not valid UTF-8: {exc}".encode(), "text/plain"
            result = self._transform(self.model, data, content_type, accept)
            if isinstance(result, tuple):
                return 200, content.to_body(result[0]), str(result[1])
            if "," in accept:  # a list is no content type: answer with the first type it names
                accept = (content.parse_accept(accept) or [self.default_accept])[0]
            return 200, content.to_body(result), accept
        except InferenceError as exc:
            if exc.status_code >= 500:
                traceback.print_exc(file=sys.stderr)
            return exc.status_code, exc.message.encode("utf-8", "replace"), "text/plain"
        except Exception as exc:  # noqa: BLE001 - any handler error answers 500 with its text
            traceback.print_exc(file=sys.stderr)
            text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return 500, text.encode("utf-8", "replace"), "text/plain"


def build(default_handler: str | None = None) -> Transformer:
    """Resolve the functions from the user's module and the image's default one (not loaded yet)."""
    handlers = resolve(load_user_module(), load_default_module(default_handler))
    log.info(
        "Serving with %s",
        ", ".join(f"{name} from {handlers.origins[name]}" for name in NAMES if name in handlers.functions),
    )
    return Transformer(handlers)
