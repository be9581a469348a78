"""The vLLM engine's process management: start, wait for /health, route, stop.

The real `vllm` needs a GPU, so `fake_vllm.py` stands in for the external executable;
what is tested is this service's side: the command line, readiness polling, failures
with their reason, routing through the OpenAI-compatible API, and stopping the process.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from llmops.llm.errors import ApiError
from llmops_inference.engines.base import ChatTurn, EngineStartError, GenerationRequest, collect
from llmops_inference.engines.vllm import VllmEngine, VllmOptions

FAKE_VLLM = (sys.executable, str(Path(__file__).with_name("fake_vllm.py")))


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def engine(http: httpx.AsyncClient, tmp_path: Path, start_timeout_s: float = 30.0) -> VllmEngine:
    options = VllmOptions(
        command=FAKE_VLLM,
        log_dir=tmp_path,
        extra_args=("--gpu-memory-utilization", "0.8"),
        start_timeout_s=start_timeout_s,
        stop_timeout_s=5.0,
    )
    return VllmEngine(
        "support-llm", "org/some-model", http=http, revision="abc123", options=options
    )


async def test_vllm_is_started_health_checked_routed_to_and_stopped(
    http: httpx.AsyncClient, tmp_path: Path
) -> None:
    vllm = engine(http, tmp_path)
    await vllm.start()
    process = vllm._process
    assert process is not None
    try:
        assert vllm.context_length == 2048  # learned from the server's /v1/models
        messages = [ChatTurn("user", "where is my order")]
        streamed = await collect(vllm.stream(GenerationRequest(messages, max_tokens=8)))
        whole = await collect(vllm.stream(GenerationRequest(messages, stream=False)))
        assert streamed == whole
        text, finish, usage = streamed
        assert (text, finish, usage.completion_tokens) == ("echo: where is my order", "stop", 5)
        await vllm.health()
    finally:
        await vllm.close()

    assert process.returncode is not None  # stopped and reaped
    assert vllm.exited
    argv = json.loads(
        (tmp_path / "vllm-support-llm.log").read_text().split("argv: ")[1].split("\n")[0]
    )
    assert argv[:2] == ["serve", "org/some-model"]
    assert argv[argv.index("--served-model-name") + 1] == "support-llm"
    assert argv[argv.index("--revision") + 1] == "abc123"
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    assert argv[-2:] == ["--gpu-memory-utilization", "0.8"]
    with pytest.raises(ApiError) as stopped:
        await anext(vllm.stream(GenerationRequest(messages)))
    assert stopped.value.status == 503


async def test_a_vllm_that_exits_during_start_up_fails_with_its_code_and_log(
    http: httpx.AsyncClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_VLLM_EXIT_CODE", "3")
    with pytest.raises(EngineStartError) as failed:
        await engine(http, tmp_path).start()
    assert "exited with code 3" in str(failed.value)
    assert "no CUDA GPUs are available" in str(failed.value)


async def test_a_vllm_that_never_gets_ready_is_stopped_after_the_timeout(
    http: httpx.AsyncClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_VLLM_READY_AFTER_S", "3600")
    vllm = engine(http, tmp_path, start_timeout_s=1.0)
    with pytest.raises(EngineStartError, match="not ready after 1s"):
        await vllm.start()
    assert vllm._process is None  # stopped, not left behind


async def test_a_missing_vllm_executable_says_which_setting_to_fix(
    http: httpx.AsyncClient, tmp_path: Path
) -> None:
    vllm = VllmEngine(
        "m",
        "org/m",
        http=http,
        options=VllmOptions(command=("/nonexistent/vllm",), log_dir=tmp_path),
    )
    with pytest.raises(EngineStartError, match="INFERENCE_VLLM_COMMAND"):
        await vllm.start()
