"""Dense text embeddings: the semantic half of hybrid search.

Two ways to run the same sentence-transformers model:

- `torch`: sentence-transformers itself (on CUDA when available); the reference.
- `onnx` / `onnx-int8`: a cached ONNX export (see `onnx_export.py`) run by onnxruntime,
  with the model's own fast tokenizer and pooling in numpy. No torch at inference time,
  and faster on CPU; int8 trades a little accuracy for more speed.

Every backend returns float32 rows that are L2-normalised, whether or not the model
lists a Normalize module, because the vector store ranks by cosine / dot product.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast

import numpy as np
import numpy.typing as npt

from llmops.embedding.models import (
    DEFAULT_EMBEDDING_MODEL,
    load_tokenizer,
    model_label,
    resolve_model_dir,
)
from llmops.embedding.onnx_export import ensure_onnx_export

if TYPE_CHECKING:
    from tokenizers import Encoding, Tokenizer

Embeddings = npt.NDArray[np.float32]
Pooling = Literal["mean", "cls"]
_LEGACY_POOLING_KEYS = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls"}


class EmbeddingBackend(StrEnum):
    """How a dense encoder runs its model."""

    TORCH = "torch"
    ONNX = "onnx"
    ONNX_INT8 = "onnx-int8"


class Parallelism(StrEnum):
    """How an ONNX encoder spreads its work over its threads."""

    BATCHES = "batches"
    """Forward passes run at once, one thread each."""
    OPERATORS = "operators"
    """One forward pass at a time, each operator split across the threads."""


class UnsupportedModelError(ValueError):
    """The model's sentence-transformers pipeline has a step the ONNX backends cannot run."""


class DenseEncoder(Protocol):
    """Turns texts into unit-length vectors of a fixed dimension."""

    model: str
    backend: EmbeddingBackend
    dimension: int
    max_tokens: int

    def encode(self, texts: Sequence[str]) -> Embeddings:
        """Embeddings of `texts`, shape (len(texts), dimension), rows in input order."""
        ...


def load_dense_encoder(
    model: str = DEFAULT_EMBEDDING_MODEL,
    backend: EmbeddingBackend = EmbeddingBackend.ONNX,
    *,
    cache_dir: Path,
    batch_size: int = 64,
    threads: int | None = None,
    spin_threads: bool = False,
    parallelism: Parallelism = Parallelism.BATCHES,
) -> DenseEncoder:
    """A dense encoder for `model` on `backend`; ONNX exports are made once under `cache_dir`.

    `threads` caps the CPU threads (None: onnxruntime's default, or one per core the
    process may use with `Parallelism.BATCHES`); on torch this is `torch.set_num_threads`,
    which applies to the whole process. `spin_threads` lets onnxruntime's threads
    busy-wait between operators (its default): ~3 % faster on cores of their own, but CPU
    burnt that the process's other work and its neighbours need when they share the
    cores: off, the ingest pipeline on 2 cores went from 41.6 to 50.5 chunks/s (the
    indexer's CPU from 201 to 149 s for 6,000 chunks).

    `parallelism` (ONNX backends) is how those threads share the work. Operators split
    across threads wait for each other at every operator, so a thread that loses its core
    to another process stalls the others; passes on one thread each do not wait. On 2
    cores, the ingest benchmark's chunks in calls of 128: 160 chunks/s by batches against
    148 by operators; calls of 16: 103 against 78 (each call cut into two passes of 8);
    one text per call: 107 against 111. With another process taking about one core
    (calls of 128, before calls were cut): 80 chunks/s and 96 CPU-s against 72 and 105.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if backend is EmbeddingBackend.TORCH:
        return _TorchEncoder(model, batch_size=batch_size, threads=threads)
    return _OnnxEncoder(
        model,
        backend,
        cache_dir=cache_dir,
        batch_size=batch_size,
        threads=threads,
        spin_threads=spin_threads,
        parallelism=parallelism,
    )


class _TorchEncoder:
    """sentence-transformers on torch: the reference the ONNX backends are checked against."""

    def __init__(self, model: str, *, batch_size: int, threads: int | None) -> None:
        import torch  # lazy: optional extra `llmops[embeddings]`, heavy
        from sentence_transformers import SentenceTransformer  # lazy: as above

        model_dir = resolve_model_dir(model)
        if threads is not None:
            torch.set_num_threads(threads)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        self._model = SentenceTransformer(str(model_dir), device=device, local_files_only=True)
        self._batch_size = batch_size
        self.model = model_label(model)
        self.backend = EmbeddingBackend.TORCH
        self.dimension = _required(self._model.get_embedding_dimension(), "dimension", model_dir)
        self.max_tokens = _required(self._model.max_seq_length, "max_seq_length", model_dir)

    def encode(self, texts: Sequence[str]) -> Embeddings:
        """Embeddings of `texts`; sentence-transformers sorts by length and batches itself."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self._model.encode(
            list(texts),
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


class _OnnxEncoder:
    """An ONNX export run by onnxruntime, tokenised and pooled as sentence-transformers does."""

    def __init__(
        self,
        model: str,
        backend: EmbeddingBackend,
        *,
        cache_dir: Path,
        batch_size: int,
        threads: int | None,
        spin_threads: bool,
        parallelism: Parallelism,
    ) -> None:
        import onnxruntime  # type: ignore[import-untyped]  # no type hints; lazy: optional

        model_dir = resolve_model_dir(model)
        pooling, self.dimension, self.max_tokens = _read_pipeline(model_dir)
        path = ensure_onnx_export(model, cache_dir, int8=backend is EmbeddingBackend.ONNX_INT8)

        options = onnxruntime.SessionOptions()
        self._passes: ThreadPoolExecutor | None = None
        self._workers = 1
        if parallelism is Parallelism.BATCHES:
            options.intra_op_num_threads = 1
            self._workers = threads or _usable_cores()
            if self._workers > 1:  # Session.run may be called from several threads at once
                self._passes = ThreadPoolExecutor(self._workers, thread_name_prefix="onnx-pass")
        elif threads is not None:
            options.intra_op_num_threads = threads
        options.add_session_config_entry(
            "session.intra_op.allow_spinning", "1" if spin_threads else "0"
        )
        available = onnxruntime.get_available_providers()
        providers = [
            name for name in ("CUDAExecutionProvider", "CPUExecutionProvider") if name in available
        ]
        self._session: Any = onnxruntime.InferenceSession(
            str(path), sess_options=options, providers=providers
        )
        self._inputs = {node.name for node in self._session.get_inputs()}
        self._tokenizer: Tokenizer = load_tokenizer(model)
        # Pad per batch by hand (see _batch_inputs), so only truncation is configured here.
        self._tokenizer.enable_truncation(max_length=self.max_tokens)
        self._pad_id = _pad_token_id(model_dir)
        self._pooling: Pooling = pooling
        self._batch_size = batch_size
        self.model = model_label(model)
        self.backend = backend

    def encode(self, texts: Sequence[str]) -> Embeddings:
        """Embeddings of `texts`, batched longest first so each batch carries little padding.

        With passes run at once, a call too small to give every thread a full batch is cut
        into smaller ones, so that no thread sits idle (a 16-text call on 2 threads: two
        passes of 8, not one of 16).
        """
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        encodings = self._tokenizer.encode_batch(list(texts))
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids), reverse=True)
        size = min(self._batch_size, -(-len(order) // self._workers))
        batches = [order[start : start + size] for start in range(0, len(order), size)]

        def embed(rows: list[int]) -> Embeddings:
            return self._embed([encodings[i] for i in rows])

        passes: Iterator[Embeddings]
        if self._passes is not None and len(batches) > 1:
            passes = self._passes.map(embed, batches)  # results in the order of the batches
        else:
            passes = map(embed, batches)
        for rows, vectors in zip(batches, passes, strict=True):
            out[rows] = vectors
        return out

    def _embed(self, batch: list[Encoding]) -> Embeddings:
        """Pooled, L2-normalised embeddings of one batch of tokenised texts."""
        inputs = self._batch_inputs(batch)
        feeds = {name: array for name, array in inputs.items() if name in self._inputs}
        hidden: npt.NDArray[np.float32] = self._session.run(["last_hidden_state"], feeds)[0]
        if self._pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = inputs["attention_mask"][..., None].astype(np.float32)
            pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        unit: Embeddings = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return unit

    def _batch_inputs(self, batch: list[Encoding]) -> dict[str, npt.NDArray[np.int64]]:
        """Model inputs for `batch`, right-padded to its longest text."""
        width = max(len(encoding.ids) for encoding in batch)
        input_ids = np.full((len(batch), width), self._pad_id, dtype=np.int64)
        attention_mask = np.zeros((len(batch), width), dtype=np.int64)
        token_type_ids = np.zeros((len(batch), width), dtype=np.int64)
        for row, encoding in enumerate(batch):
            length = len(encoding.ids)
            input_ids[row, :length] = encoding.ids
            attention_mask[row, :length] = 1
            token_type_ids[row, :length] = encoding.type_ids
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "token_type_ids": token_type_ids,
        }


def _read_pipeline(model_dir: Path) -> tuple[Pooling, int, int]:
    """Pooling mode, embedding dimension and token limit from the sentence-transformers files.

    Only Transformer -> Pooling (mean or cls) -> optional Normalize pipelines are supported;
    anything else (Dense layers, max pooling, ...) must use the torch backend.
    """
    modules_file = model_dir / "modules.json"
    # A plain transformers checkpoint: sentence-transformers would add mean pooling.
    modules: list[dict[str, Any]] = (
        json.loads(modules_file.read_text()) if modules_file.is_file() else []
    )
    config = _read_json(model_dir / "config.json")
    transformer_dir = model_dir
    pooling_config: dict[str, Any] = {}
    for module in modules:
        kind = str(module["type"]).rsplit(".", 1)[-1]
        if kind == "Transformer":
            transformer_dir = model_dir / str(module.get("path", ""))
        elif kind == "Pooling":
            pooling_config = _read_json(model_dir / str(module["path"]) / "config.json")
        elif kind != "Normalize":
            raise UnsupportedModelError(
                f"{model_dir}: module {module['type']} is not supported by the ONNX backends; "
                f"use the {EmbeddingBackend.TORCH} backend"
            )
    dimension = int(
        pooling_config.get("word_embedding_dimension")
        or pooling_config.get("embedding_dimension")
        or config["hidden_size"]
    )
    return _pooling_mode(pooling_config, model_dir), dimension, _max_tokens(transformer_dir, config)


def _pooling_mode(config: dict[str, Any], model_dir: Path) -> Pooling:
    """The single pooling mode of a Pooling config, in the current or the legacy keys."""
    mode = config.get("pooling_mode")
    if mode is None:
        active = [key for key, on in config.items() if key.startswith("pooling_mode_") and on]
        if not active:
            mode = "mean"  # sentence-transformers' default
        elif len(active) == 1:
            mode = _LEGACY_POOLING_KEYS.get(active[0])
    if mode in ("mean", "cls"):
        return cast("Pooling", mode)
    raise UnsupportedModelError(
        f"{model_dir}: pooling {config} is not supported by the ONNX backends (mean or cls only); "
        f"use the {EmbeddingBackend.TORCH} backend"
    )


def _max_tokens(transformer_dir: Path, config: dict[str, Any]) -> int:
    """The model's sequence limit: sentence-transformers' max_seq_length, else the tokenizer's."""
    sbert = _read_json(transformer_dir / "sentence_bert_config.json")
    if isinstance(sbert.get("max_seq_length"), int):
        return int(sbert["max_seq_length"])
    limit = int(_read_json(transformer_dir / "tokenizer_config.json").get("model_max_length", 512))
    positions = config.get("max_position_embeddings")
    return min(limit, positions) if isinstance(positions, int) and positions > 0 else limit


def _pad_token_id(model_dir: Path) -> int:
    """The id padded positions carry; masked out, so any valid id works and 0 is the fallback."""
    pad = _read_json(model_dir / "config.json").get("pad_token_id")
    return pad if isinstance(pad, int) else 0


def _read_json(path: Path) -> dict[str, Any]:
    """A JSON object from `path`, or {} when the optional file is absent."""
    if not path.is_file():
        return {}
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):  # Linux; not macOS or Windows
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _required(value: int | None, what: str, model_dir: Path) -> int:
    """`value`, or a clear error when sentence-transformers could not tell it."""
    if value is None:
        raise UnsupportedModelError(f"{model_dir}: sentence-transformers reports no {what}")
    return value
