"""Handler resolution and the invocation pipeline of homeport_toolkit (sagemaker-inference's contract)."""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from homeport_toolkit import handler
from homeport_toolkit.app import App
from homeport_toolkit.errors import InferenceError
from homeport_toolkit.handler import Handlers, Transformer, resolve


def module(name: str, **functions: Any) -> ModuleType:
    made = ModuleType(name)
    for key, value in functions.items():
        setattr(made, key, value)
    return made


def model_fn(model_dir: str) -> str:
    return "model"


def transform_fn(model: Any, data: Any, content_type: str, accept: str) -> str:
    return "transformed"


def input_fn(data: Any, content_type: str) -> Any:
    return data


def predict_fn(data: Any, model: Any) -> Any:
    return data


def output_fn(prediction: Any, accept: str) -> Any:
    return prediction


# -- resolution --------------------------------------------------------------------------------


def test_transform_fn_with_any_of_the_trio_is_refused() -> None:
    for name, fn in (("input_fn", input_fn), ("predict_fn", predict_fn), ("output_fn", output_fn)):
        user = module("user", model_fn=model_fn, transform_fn=transform_fn, **{name: fn})
        with pytest.raises(ValueError, match="Cannot use transform_fn"):
            resolve(user)


def test_default_module_mixing_transform_fn_and_trio_is_refused_too() -> None:
    with pytest.raises(ValueError, match="Cannot use transform_fn"):
        resolve(None, module("image_default", transform_fn=transform_fn, predict_fn=predict_fn))


def test_user_functions_win_then_the_default_module_then_the_toolkit() -> None:
    def default_predict(data: Any, model: Any) -> str:
        return "default"

    def default_model(model_dir: str) -> str:
        return "default model"

    user = module("user", model_fn=model_fn, output_fn=output_fn)
    default = module("image_default", model_fn=default_model, predict_fn=default_predict)
    handlers = resolve(user, default)
    assert handlers.functions["model_fn"] is model_fn
    assert handlers.functions["output_fn"] is output_fn
    assert handlers.functions["predict_fn"] is default_predict
    assert handlers.functions["input_fn"] is handler.default_input_fn
    assert handlers.origins == {
        "model_fn": "user",
        "output_fn": "user",
        "predict_fn": "default",
        "input_fn": "toolkit",
    }
    assert not handlers.uses_transform_fn()


def test_user_trio_overrides_a_default_transform_fn_and_vice_versa() -> None:
    default = module("image_default", model_fn=model_fn, transform_fn=transform_fn)
    with_trio = resolve(module("user", predict_fn=predict_fn), default)
    assert not with_trio.uses_transform_fn()
    assert with_trio.functions["predict_fn"] is predict_fn
    assert with_trio.functions["input_fn"] is handler.default_input_fn
    untouched = resolve(module("user", model_fn=model_fn), default)
    assert (
        untouched.functions["transform_fn"] is transform_fn and untouched.origins["transform_fn"] == "default"
    )

    def user_transform(model: Any, data: Any, content_type: str, accept: str) -> str:
        return "user"

    default_trio = module("image_default", model_fn=model_fn, predict_fn=predict_fn)
    own = resolve(module("user", transform_fn=user_transform), default_trio)
    assert own.functions["transform_fn"] is user_transform
    assert "predict_fn" not in own.functions


def test_no_model_fn_anywhere_fails_when_loading() -> None:
    transformer = Transformer(resolve(None), model_dir="/nowhere")
    with pytest.raises(NotImplementedError, match="model_fn"):
        transformer.load()


def test_a_function_with_the_wrong_arity_is_refused_at_startup() -> None:
    def bad_input(data: Any) -> Any:
        return data

    with pytest.raises(TypeError, match="input_fn takes 1 arguments"):
        Transformer(resolve(module("user", model_fn=model_fn, input_fn=bad_input)))


# -- the pipeline ------------------------------------------------------------------------------


class Doubler:
    def predict(self, data: Any) -> Any:
        return np.asarray(data) * 2


def test_context_argument_is_passed_where_declared(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    def model_with_context(model_dir: str, context: Any) -> Doubler:
        seen["model_dir"] = model_dir
        seen["load_context"] = context
        return Doubler()

    def predict_with_context(data: Any, model: Any, context: Any) -> Any:
        seen["predict_context"] = context
        return model.predict(data)

    def output_with_default_context(prediction: Any, accept: str, context: Any = None) -> Any:
        seen["output_context"] = context
        return json.dumps(prediction.tolist()), "application/json"

    user = module(
        "user",
        model_fn=model_with_context,
        predict_fn=predict_with_context,
        output_fn=output_with_default_context,
    )
    transformer = Transformer(resolve(user), model_dir=str(tmp_path))
    transformer.load()
    status, body, content_type = transformer.invoke(b"[1, 2]", "application/json", None)
    assert (status, body, content_type) == (200, b"[2, 4]", "application/json")
    context = seen["load_context"]
    assert context is seen["predict_context"] is seen["output_context"]
    assert context.system_properties["model_dir"] == str(tmp_path) == seen["model_dir"]


def test_bodies_of_json_and_csv_arrive_as_str_others_as_bytes() -> None:
    received: list[tuple[Any, Any]] = []

    def recording_transform(model: Any, data: Any, content_type: Any, accept: Any) -> str:
        received.append((data, content_type))
        return "ok"

    transformer = Transformer(resolve(module("user", model_fn=model_fn, transform_fn=recording_transform)))
    transformer.load()
    transformer.invoke(b"1,2", "text/csv", "text/csv")
    transformer.invoke(b'{"a": 1}', "application/json; charset=utf-8", None)
    transformer.invoke(b"\x00\x01", "application/octet-stream", None)
    transformer.invoke(b"raw", None, None)
    assert received == [
        ("1,2", "text/csv"),
        ('{"a": 1}', "application/json; charset=utf-8"),
        (b"\x00\x01", "application/octet-stream"),
        (b"raw", None),
    ]


def test_accept_defaults_and_tuple_results(monkeypatch: pytest.MonkeyPatch) -> None:
    def echo_accept(model: Any, data: Any, content_type: Any, accept: str) -> str:
        return f"accept={accept}"

    handlers = resolve(module("user", model_fn=model_fn, transform_fn=echo_accept))
    transformer = Transformer(handlers)
    transformer.load()
    assert transformer.invoke(b"", "text/csv", None) == (200, b"accept=application/json", "application/json")
    assert transformer.invoke(b"", "text/csv", "*/*")[2] == "application/json"
    assert transformer.invoke(b"", "text/csv", "text/csv")[1:] == (b"accept=text/csv", "text/csv")
    listed = transformer.invoke(b"", "text/csv", "text/csv;q=0.9, application/json")
    assert listed[1:] == (b"accept=text/csv;q=0.9, application/json", "text/csv")
    monkeypatch.setenv("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "text/csv")
    assert Transformer(handlers).invoke(b"", "text/csv", None)[2] == "text/csv"

    def tupled(model: Any, data: Any, content_type: Any, accept: str) -> tuple[bytes, str]:
        return b"\x01", "application/x-custom"

    transformer = Transformer(resolve(module("user", model_fn=model_fn, transform_fn=tupled)))
    assert transformer.invoke(b"", "text/csv", "text/csv") == (200, b"\x01", "application/x-custom")


def test_default_trio_statuses(capsys: pytest.CaptureFixture[str]) -> None:
    def broken_predict(data: Any, model: Any) -> Any:
        raise RuntimeError("the model broke")

    def teapot(data: Any, model: Any) -> Any:
        raise InferenceError("short and stout", status_code=418)

    transformer = Transformer(resolve(module("user", model_fn=lambda model_dir: Doubler())))
    transformer.load()
    assert transformer.invoke(b"1,2\n3,4", "text/csv", "text/csv") == (200, b"2.0,4.0\n6.0,8.0\n", "text/csv")
    assert transformer.invoke(b"[1]", "application/json", None) == (200, b"[2]", "application/json")
    status, body, _ = transformer.invoke(b"1", "text/plain", None)
    assert status == 415 and b"text/plain" in body
    status, body, _ = transformer.invoke(b"1", "text/csv", "image/png")
    assert status == 406 and b"image/png" in body
    assert transformer.invoke(b"\xff", "text/csv", None)[0] == 400

    failing = Transformer(resolve(module("user", model_fn=model_fn, predict_fn=broken_predict)))
    failing.load()
    assert failing.invoke(b"1", "text/csv", None) == (500, b"RuntimeError: the model broke", "text/plain")
    assert "Traceback" in capsys.readouterr().err
    custom = Transformer(resolve(module("user", model_fn=model_fn, predict_fn=teapot)))
    assert custom.invoke(b"1", "text/csv", None) == (418, b"short and stout", "text/plain")


def test_default_predict_fn_calls_predict_or_the_model() -> None:
    assert handler.default_predict_fn(3, lambda x: x + 1) == 4
    assert handler.default_predict_fn(np.array([1]), Doubler()).tolist() == [2]
    with pytest.raises(NotImplementedError, match="predict_fn"):
        handler.default_predict_fn(1, object())


# -- modules from files ------------------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def test_user_module_from_model_code_and_default_handler_fallback(
    base_dir: Path, module_name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    write(
        base_dir / "model" / "code" / f"{module_name}.py",
        """
        def model_fn(model_dir):
            return {"dir": model_dir}
        """,
    )
    default_name = f"{module_name}_default"
    write(
        tmp_path / "program" / f"{default_name}.py",
        """
        def predict_fn(data, model):
            return [model["dir"], data.tolist()]
        """,
    )
    monkeypatch.syspath_prepend(str(tmp_path / "program"))
    monkeypatch.setenv("SAGEMAKER_PROGRAM", f"{module_name}.py")
    try:
        transformer = handler.build(default_name)
        assert transformer.handlers.origins["model_fn"] == "user"
        assert transformer.handlers.origins["predict_fn"] == "default"
        transformer.load()
        status, body, _ = transformer.invoke(b"1,2", "text/csv", None)
        assert status == 200 and json.loads(body) == [str(base_dir / "model"), [[1.0, 2.0]]]
    finally:
        import sys

        sys.modules.pop(default_name, None)


def test_submit_directory_folder_and_missing_program(
    base_dir: Path, module_name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    code = tmp_path / "elsewhere"
    write(code / f"{module_name}.py", "def model_fn(model_dir):\n    return 1\n")
    monkeypatch.setenv("SAGEMAKER_SUBMIT_DIRECTORY", str(code))
    monkeypatch.setenv("SAGEMAKER_PROGRAM", f"{module_name}.py")
    assert handler.user_code_dir() == code
    assert handler.build().handlers.origins["model_fn"] == "user"
    monkeypatch.setenv("SAGEMAKER_PROGRAM", "absent.py")
    with pytest.raises(FileNotFoundError, match="absent.py"):
        handler.load_user_module()


def test_inference_py_is_used_without_sagemaker_program(base_dir: Path) -> None:
    assert handler.user_module_name() is None
    write(base_dir / "model" / "code" / "inference.py", "")
    assert handler.user_module_name() == "inference"


# -- the ASGI app in-process -------------------------------------------------------------------


async def call(
    app: App, method: str, path: str, body: bytes = b"", headers: Any = ()
) -> tuple[int, dict, bytes]:
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers],  # ASGI: lower-case names
    }
    chunks = [body[:3], body[3:]] if len(body) > 3 else [body]  # exercise more_body
    messages = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    sent: list[dict] = []

    async def receive() -> dict:
        return messages.pop(0)

    async def send(message: Any) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start, end = sent
    return start["status"], dict(start["headers"]), end["body"]


def test_asgi_routes_and_lifespan() -> None:
    transformer = Transformer(
        Handlers(
            {
                "model_fn": lambda d: Doubler(),
                **{n: getattr(handler, f"default_{n}") for n in ("input_fn", "predict_fn", "output_fn")},
            },
            {},
        )
    )
    app = App(transformer, workers=3)

    async def scenario() -> None:
        lifespan = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
        replies: list[dict] = []

        async def receive() -> dict:
            return lifespan.pop(0)

        async def send(message: Any) -> None:
            replies.append(message)

        await app({"type": "lifespan"}, receive, send)
        assert [r["type"] for r in replies] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
        assert await call(app, "GET", "/ping") == (
            200,
            {b"content-type": b"text/plain", b"content-length": b"0"},
            b"",
        )
        status, headers, body = await call(
            app,
            "POST",
            "/invocations",
            b"1,2,3\n4,5,6",
            [("Content-Type", "text/csv"), ("Accept", "text/csv")],
        )
        assert (status, headers[b"content-type"], body) == (200, b"text/csv", b"2.0,4.0,6.0\n8.0,10.0,12.0\n")
        status, headers, body = await call(app, "GET", "/execution-parameters")
        assert json.loads(body) == {
            "MaxConcurrentTransforms": 3,
            "BatchStrategy": "MULTI_RECORD",
            "MaxPayloadInMB": 6,
        }
        assert (await call(app, "GET", "/nothing"))[0] == 404
        assert (await call(app, "GET", "/invocations"))[0] == 404

    asyncio.run(scenario())
    assert transformer.loaded


def test_lifespan_startup_failure_is_reported() -> None:
    def failing_model(model_dir: str) -> Any:
        raise FileNotFoundError("model.pkl")

    app = App(Transformer(resolve(module("user", model_fn=failing_model))))
    replies: list[dict] = []

    async def receive() -> dict:
        return {"type": "lifespan.startup"}

    async def send(message: Any) -> None:
        replies.append(message)

    asyncio.run(app({"type": "lifespan"}, receive, send))
    assert replies == [{"type": "lifespan.startup.failed", "message": "FileNotFoundError: model.pkl"}]
