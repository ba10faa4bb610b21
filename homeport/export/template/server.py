#!/usr/bin/env python3
"""A standalone inference server for ``model.onnx``: GET /ping and POST /invocations on port 8080.

The SageMaker container contract, so the same folder runs locally, in Docker, on SageMaker and on
any platform that runs a container and sends it HTTP. Needs only Python 3.9+, numpy and
onnxruntime; request and response formats are those of ``onnx_handler.py`` beside this file.

    python server.py [--host 0.0.0.0] [--port 8080] [--model-dir DIR] [--threads 1]

Port: ``--port``, else $PORT (Cloud Run, Heroku), $AIP_HTTP_PORT (Vertex AI),
$SAGEMAKER_BIND_TO_PORT (SageMaker inference pipelines), else 8080. Model: ``--model-dir``,
else $MODEL_DIR, else this folder when it holds model.onnx, else /opt/ml/model.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import onnx_handler  # noqa: E402  (the codecs and the session, next to this file)

HERE = os.path.dirname(os.path.abspath(__file__))
MAX_BODY = 100 * 1024 * 1024


def default_port() -> int:
    for name in ("PORT", "AIP_HTTP_PORT", "SAGEMAKER_BIND_TO_PORT"):
        if os.environ.get(name):
            return int(os.environ[name])
    return 8080


def default_model_dir() -> str:
    if os.environ.get("MODEL_DIR"):
        return os.environ["MODEL_DIR"]
    if os.path.isfile(os.path.join(HERE, onnx_handler.MODEL_FILE)):
        return HERE
    return "/opt/ml/model"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: no new connection per request
    server_version = "onnx-server"
    model: onnx_handler.OnnxModel
    ping_paths = {"/ping"}
    invoke_paths = {"/invocations"}
    quiet = True

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path = self.path.split("?", 1)[0]
        if path in self.ping_paths:
            self._reply(HTTPStatus.OK, b"", "text/plain")
        elif path == "/execution-parameters":  # what SageMaker batch transform asks first
            doc = {"MaxConcurrentTransforms": os.cpu_count() or 1, "BatchStrategy": "MULTI_RECORD",
                   "MaxPayloadInMB": 6}
            self._reply(HTTPStatus.OK, json.dumps(doc).encode(), "application/json")
        else:
            self._error(HTTPStatus.NOT_FOUND, f"no route GET {path}")

    def do_POST(self) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0]
        if path not in self.invoke_paths:
            self.close_connection = True  # the body is left unread
            self._error(HTTPStatus.NOT_FOUND, f"no route POST {path}")
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.close_connection = True
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {MAX_BODY} bytes")
            return
        body = self.rfile.read(length)
        try:
            out, content_type = onnx_handler.transform_fn(
                self.model, body, self.headers.get("Content-Type"), self.headers.get("Accept")
            )
        except onnx_handler.OnnxHandlerError as exc:
            self._error(exc.status_code, str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - any failure is the client's 500, the server goes on
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(exc).__name__}: {exc}")
            return
        self._reply(HTTPStatus.OK, out, content_type)

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str) -> None:
        self._reply(status, (message + "\n").encode(), "text/plain")

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        if not self.quiet:
            super().log_message(format, *args)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", nargs="?", choices=["serve"], help="ignored: SageMaker runs `IMAGE serve`")
    parser.add_argument("--host", default=os.environ.get("HOST", "0.0.0.0"), help="address to bind")
    parser.add_argument("--port", type=int, default=default_port(), help="port to bind (default 8080)")
    parser.add_argument("--model-dir", default=default_model_dir(), help="folder holding model.onnx")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("ONNX_THREADS", "1")),
                        help="onnxruntime threads per request (requests run in parallel)")
    parser.add_argument("--access-log", action="store_true", help="log every request")
    args = parser.parse_args(argv)

    started = time.monotonic()
    Handler.model = onnx_handler.load_model(args.model_dir, threads=args.threads)
    Handler.quiet = not args.access_log
    # Vertex AI names its own routes; /ping and /invocations keep working.
    routes = {"AIP_HEALTH_ROUTE": Handler.ping_paths, "AIP_PREDICT_ROUTE": Handler.invoke_paths}
    for variable, paths in routes.items():
        if os.environ.get(variable):
            paths.add(os.environ[variable])
    httpd = ThreadingHTTPServer((args.host, args.port), Handler)
    httpd.daemon_threads = True
    # As PID 1 in a container SIGTERM has no default action: stop on it explicitly.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    model_path = os.path.join(args.model_dir, onnx_handler.MODEL_FILE)
    loaded = time.monotonic() - started
    print(f"serving {model_path} on http://{args.host}:{args.port} (loaded in {loaded:.2f} s)", flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()


if __name__ == "__main__":
    main()
