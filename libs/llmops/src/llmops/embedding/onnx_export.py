"""ONNX exports of embedding models, made once and cached on disk.

The export (fp32, and its int8 dynamic quantisation) lives under
`cache_dir / f"{model_label}-{fingerprint}"`, where the fingerprint covers the weights
files' names, sizes and mtimes and the model's config.json: a changed model gets a new
directory instead of a stale export. Files are written to a temporary name and renamed
into place, so concurrent exporters never expose a half-written model.

Exporting needs torch and transformers; running an export (see `dense.py`) does not.
Models over protobuf's 2 GiB limit (external weights files) are not supported.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from llmops.embedding.models import ModelNotFoundError, model_label, resolve_model_dir

# Bump when the export itself changes (inputs, opset, quantisation), so caches re-export.
_EXPORT_FORMAT = "onnx-v1-opset17"
_OPSET = 17
_FP32_NAME = "model.onnx"
_INT8_NAME = "model-int8.onnx"
_OUTPUT = "last_hidden_state"

_log = logging.getLogger(__name__)


def model_fingerprint(model_dir: Path) -> str:
    """A short hash of the weights files (name, size, mtime) and config.json of `model_dir`."""
    weights = sorted([*model_dir.glob("*.safetensors"), *model_dir.glob("pytorch_model*.bin")])
    if not weights:
        raise ModelNotFoundError(f"{model_dir} has no weights (*.safetensors, pytorch_model*.bin)")
    digest = hashlib.blake2b(_EXPORT_FORMAT.encode(), digest_size=6)
    for path in weights:
        stat = path.stat()
        digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    digest.update((model_dir / "config.json").read_bytes())
    return digest.hexdigest()


def export_dir(model: str, cache_dir: Path) -> Path:
    """The cache directory holding the ONNX exports of `model`'s current weights."""
    model_dir = resolve_model_dir(model)
    return cache_dir / f"{model_label(model)}-{model_fingerprint(model_dir)}"


def ensure_onnx_export(model: str, cache_dir: Path, *, int8: bool = False) -> Path:
    """The cached ONNX file of `model` (fp32, or int8-quantised), exported on first use.

    The graph takes `input_ids`, `attention_mask` (and `token_type_ids` when the model
    accepts them), int64 of shape (batch, sequence), and returns `last_hidden_state`.
    """
    model_dir = resolve_model_dir(model)
    directory = export_dir(model, cache_dir)
    fp32 = directory / _FP32_NAME
    if not fp32.is_file():
        _timed(f"ONNX export of {model}", lambda: _write_atomically(fp32, _exporter(model_dir)))
    if not int8:
        return fp32
    quantised = directory / _INT8_NAME
    if not quantised.is_file():
        _timed(
            f"int8 quantisation of {model}",
            lambda: _write_atomically(quantised, lambda tmp: _quantize_int8(fp32, tmp)),
        )
    return quantised


def _timed(what: str, work: Callable[[], None]) -> None:
    """Run `work`, logging how long it took: exports take seconds and happen rarely."""
    started = time.perf_counter()
    work()
    _log.info("%s took %.1f s", what, time.perf_counter() - started)


def _write_atomically(target: Path, write: Callable[[Path], None]) -> None:
    """Have `write` fill a temporary file beside `target`, then rename it over `target`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}-", suffix=".tmp")
    os.close(handle)
    tmp = Path(name)
    try:
        write(tmp)
        # mkstemp creates the file private (0600); the cache is meant to be shared.
        tmp.chmod(0o644)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _exporter(model_dir: Path) -> Callable[[Path], None]:
    """A writer that exports the transformer of `model_dir` (no pooling) to ONNX."""

    def export(target: Path) -> None:
        import torch  # lazy: only exporting needs torch, never inference
        from transformers import AutoModel  # lazy: heavy, only needed to export

        # Eager attention traces to plain MatMul/Softmax ops that every runtime and the
        # int8 quantiser handle; the SDPA path is not needed for a one-off export.
        encoder = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()
        accepted = inspect.signature(encoder.forward).parameters
        names = [
            name for name in ("input_ids", "attention_mask", "token_type_ids") if name in accepted
        ]

        class LastHiddenState(torch.nn.Module):
            """The encoder's token embeddings, with inputs passed by position for tracing."""

            def __init__(self) -> None:
                super().__init__()
                self.encoder = encoder

            def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
                hidden: torch.Tensor = self.encoder(
                    **dict(zip(names, inputs, strict=True))
                ).last_hidden_state
                return hidden

        # The second row is padded so the trace keeps the attention-mask path; an
        # all-ones mask could let the model skip masking and bake that into the graph.
        ids = torch.ones((2, 8), dtype=torch.long)
        mask = torch.ones((2, 8), dtype=torch.long)
        mask[1, 5:] = 0
        dummy = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
        dynamic = {name: {0: "batch", 1: "sequence"} for name in [*names, _OUTPUT]}
        with torch.no_grad(), warnings.catch_warnings():
            # The legacy (TorchScript) exporter is chosen on purpose: the dynamo one needs
            # onnxscript, which the `embeddings` extra does not install. Its notices, and the
            # tracer's warnings on shape checks, are covered by the tests comparing outputs
            # with sentence-transformers over padded batches and truncated texts.
            warnings.filterwarnings("ignore", "You are using the legacy", DeprecationWarning)
            warnings.filterwarnings("ignore", module=r"torch\.onnx")
            # TracerWarning is public but missing from torch.jit's __all__.
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)  # type: ignore[attr-defined]
            torch.onnx.export(
                LastHiddenState(),
                tuple(dummy[name] for name in names),
                str(target),
                input_names=names,
                output_names=[_OUTPUT],
                dynamic_axes=dynamic,
                opset_version=_OPSET,
                dynamo=False,
            )

    return export


def _quantize_int8(source: Path, target: Path) -> None:
    """Dynamic int8 quantisation: QInt8 weights, activations quantised at run time.

    Per-channel weight scales keep all-MiniLM-L6-v2 at a mean cosine of about 0.994 to
    fp32; per-tensor scales (the default) drop it to about 0.92.
    """
    from onnxruntime.quantization import (  # type: ignore[import-untyped]  # no type hints; lazy: optional
        QuantType,
        quantize_dynamic,
    )

    quantize_dynamic(source, target, weight_type=QuantType.QInt8, per_channel=True)
