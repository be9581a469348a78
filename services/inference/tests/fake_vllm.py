"""Stands in for the external `vllm` executable in tests (the real one needs a GPU).

`python fake_vllm.py serve MODEL --host H --port P --served-model-name NAME [...]` serves
what the inference service uses of vLLM's OpenAI-compatible server: `/health` (503 until
ready), `/v1/models` (with `max_model_len`) and `/v1/chat/completions`, streamed or not,
answering `echo: <last message>`. It prints its pid and command line first (tests read
the log). Environment: FAKE_VLLM_READY_AFTER_S (default 0.3), FAKE_VLLM_EXIT_CODE (exit at
once with that code, after printing an error).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def main() -> None:
    print(f"fake vllm pid={os.getpid()} argv:", json.dumps(sys.argv[1:]), flush=True)
    if "FAKE_VLLM_EXIT_CODE" in os.environ:
        print("ValueError: no CUDA GPUs are available", flush=True)
        sys.exit(int(os.environ["FAKE_VLLM_EXIT_CODE"]))
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("model")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--served-model-name", required=True)
    parser.add_argument("--max-model-len", type=int, default=2048)
    args, _ = parser.parse_known_args()
    ready_at = time.monotonic() + float(os.environ.get("FAKE_VLLM_READY_AFTER_S", "0.3"))

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *values: Any) -> None:
            print(format % values, flush=True)

        def _json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if time.monotonic() < ready_at:
                self._json(503, {"error": "loading"})
            elif self.path == "/health":
                self._json(200, {})
            elif self.path == "/v1/models":
                card = {"id": args.served_model_name, "max_model_len": args.max_model_len}
                self._json(200, {"object": "list", "data": [card]})
            else:
                self._json(404, {"error": "not found"})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if body.get("model") != args.served_model_name:
                self._json(404, {"error": {"message": "unknown model", "code": "model_not_found"}})
                return
            words = ["echo:", *body["messages"][-1]["content"].split()]
            usage = {
                "prompt_tokens": 5,
                "completion_tokens": len(words),
                "total_tokens": 5 + len(words),
            }
            if not body.get("stream"):
                message = {"role": "assistant", "content": " ".join(words)}
                choice = {"index": 0, "message": message, "finish_reason": "stop"}
                self._json(200, {"id": "x", "choices": [choice], "usage": usage})
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for i, word in enumerate(words):
                delta = {"content": word if i == 0 else " " + word}
                self._event({"id": "x", "choices": [{"index": 0, "delta": delta}]})
            self._event(
                {"id": "x", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
            )
            self._event({"id": "x", "choices": [], "usage": usage})
            self.wfile.write(b"data: [DONE]\n\n")

        def _event(self, payload: dict[str, Any]) -> None:
            self.wfile.write(b"data: " + json.dumps(payload).encode() + b"\n\n")
            self.wfile.flush()

    ThreadingHTTPServer((args.host, args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
