"""Dense encoders on the packaged all-MiniLM-L6-v2: the ONNX backends match sentence-transformers.

The ONNX export runs once per module (a module-scoped cache directory) and is reused.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pytest

from llmops.embedding import onnx_export
from llmops.embedding.dense import (
    DenseEncoder,
    EmbeddingBackend,
    Parallelism,
    UnsupportedModelError,
    load_dense_encoder,
)
from llmops.embedding.models import ModelNotFoundError, resolve_model_dir
from llmops.embedding.onnx_export import ensure_onnx_export, export_dir, model_fingerprint

MODEL = "all-MiniLM-L6-v2"
LONG_TEXT = " ".join(
    f"Paragraph {n}: the indexer splits documents into chunks, embeds them and stores vectors."
    for n in range(40)
)  # well over the model's 256-token limit
SENTENCES = [
    "Hi",
    "How do I reset my password?",
    "The quick brown fox jumps over the lazy dog.",
    "Kafka partitions messages by key so that ordering holds per entity.",
    "Qdrant stores dense and sparse vectors for hybrid search.",
    "Invoice #4521 is due on 2025-03-01 for $1,200.00.",
    "def embed(texts: list[str]) -> np.ndarray: return model.encode(texts)",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "東京は日本の首都です。",
    "I love this! 🎉🎉",
    "A man is playing a guitar on stage.",
    "The weather forecast predicts heavy rain tomorrow afternoon.",
    "Photosynthesis converts light energy into chemical energy in plants.",
    "SELECT id, name FROM users WHERE created_at > now() - interval '1 day';",
    "   leading and trailing spaces   ",
    "ALL CAPS SENTENCE ABOUT DATABASE MIGRATIONS",
    "Short.",
    "The contract may be terminated by either party with thirty days' written notice.",
    LONG_TEXT,
    "Background: " + LONG_TEXT[::-1],
]


@pytest.fixture(scope="module", autouse=True)
def offline() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        yield


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="module")
def encoders(cache_dir: Path) -> dict[EmbeddingBackend, DenseEncoder]:
    return {
        backend: load_dense_encoder(MODEL, backend, cache_dir=cache_dir, threads=2)
        for backend in EmbeddingBackend
    }


@pytest.fixture(scope="module")
def embeddings(
    encoders: dict[EmbeddingBackend, DenseEncoder],
) -> dict[EmbeddingBackend, np.ndarray]:
    return {backend: encoder.encode(SENTENCES) for backend, encoder in encoders.items()}


def cosines(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    return np.asarray((left * right).sum(axis=1))


def test_encoders_describe_the_model(encoders: dict[EmbeddingBackend, DenseEncoder]) -> None:
    for backend, encoder in encoders.items():
        assert (encoder.model, encoder.backend) == (MODEL, backend)
        assert (encoder.dimension, encoder.max_tokens) == (384, 256)


def test_onnx_matches_torch_per_sentence(embeddings: dict[EmbeddingBackend, np.ndarray]) -> None:
    similarity = cosines(embeddings[EmbeddingBackend.ONNX], embeddings[EmbeddingBackend.TORCH])

    assert similarity.min() >= 0.999, dict(zip(SENTENCES, similarity.round(5), strict=True))


def test_int8_stays_close_to_torch(embeddings: dict[EmbeddingBackend, np.ndarray]) -> None:
    similarity = cosines(embeddings[EmbeddingBackend.ONNX_INT8], embeddings[EmbeddingBackend.TORCH])

    assert similarity.mean() >= 0.98
    assert similarity.min() >= 0.95


@pytest.mark.parametrize("backend", list(EmbeddingBackend))
def test_rows_are_unit_length_float32_in_input_shape(
    backend: EmbeddingBackend, embeddings: dict[EmbeddingBackend, np.ndarray]
) -> None:
    vectors = embeddings[backend]

    assert vectors.dtype == np.float32
    assert vectors.shape == (len(SENTENCES), 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("backend", list(EmbeddingBackend))
def test_no_texts_give_an_empty_matrix(
    backend: EmbeddingBackend, encoders: dict[EmbeddingBackend, DenseEncoder]
) -> None:
    vectors = encoders[backend].encode([])

    assert vectors.shape == (0, 384)
    assert vectors.dtype == np.float32


@pytest.mark.parametrize("backend", list(EmbeddingBackend))
def test_a_paraphrase_scores_higher_than_an_unrelated_sentence(
    backend: EmbeddingBackend, encoders: dict[EmbeddingBackend, DenseEncoder]
) -> None:
    query, paraphrase, unrelated = encoders[backend].encode(
        [
            "How can I change my forgotten password?",
            "I forgot my password and need to reset it.",
            "The stock market fell sharply this afternoon.",
        ]
    )

    assert query @ paraphrase > 0.6
    assert query @ paraphrase > query @ unrelated + 0.4


def test_text_beyond_the_token_limit_is_truncated(
    encoders: dict[EmbeddingBackend, DenseEncoder],
) -> None:
    long, extended = encoders[EmbeddingBackend.ONNX].encode(
        [LONG_TEXT, LONG_TEXT + " An entirely different ending about volcanoes and lava."]
    )

    np.testing.assert_allclose(long, extended, atol=1e-6)


def test_batches_sorted_by_length_keep_the_input_order(cache_dir: Path) -> None:
    encoder = load_dense_encoder(MODEL, cache_dir=cache_dir, batch_size=3, threads=2)
    texts = SENTENCES[::-1]

    together = encoder.encode(texts)

    alone = np.vstack([encoder.encode([text]) for text in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)


@pytest.mark.parametrize(("spin", "entry"), [(False, "0"), (True, "1")])
def test_onnx_threads_busy_wait_only_when_asked(cache_dir: Path, spin: bool, entry: str) -> None:
    encoder = load_dense_encoder(MODEL, cache_dir=cache_dir, threads=2, spin_threads=spin)
    options = encoder._session.get_session_options()  # type: ignore[attr-defined]
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == entry
    assert encoder.encode(["still encodes"]).shape == (1, encoder.dimension)


@pytest.mark.parametrize(
    ("parallelism", "intra_op_threads", "pass_threads"),
    [(Parallelism.BATCHES, 1, "onnx-pass"), (Parallelism.OPERATORS, 2, "MainThread")],
)
def test_threads_run_forward_passes_at_once_or_share_each_pass(
    cache_dir: Path,
    embeddings: dict[EmbeddingBackend, np.ndarray],
    parallelism: Parallelism,
    intra_op_threads: int,
    pass_threads: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    encoder: Any = load_dense_encoder(
        MODEL, cache_dir=cache_dir, batch_size=2, threads=2, parallelism=parallelism
    )
    ran_on: set[str] = set()
    embed = encoder._embed

    def recording(batch: Any) -> Any:
        ran_on.add(threading.current_thread().name.split("_")[0])
        return embed(batch)

    monkeypatch.setattr(encoder, "_embed", recording)

    vectors = encoder.encode(SENTENCES)

    assert encoder._session.get_session_options().intra_op_num_threads == intra_op_threads
    assert ran_on == {pass_threads}
    np.testing.assert_allclose(vectors, embeddings[EmbeddingBackend.ONNX], atol=1e-5)


@pytest.mark.parametrize(
    ("parallelism", "passes"), [(Parallelism.BATCHES, [3, 2]), (Parallelism.OPERATORS, [5])]
)
def test_a_call_smaller_than_a_batch_still_gives_every_thread_a_pass(
    cache_dir: Path,
    embeddings: dict[EmbeddingBackend, np.ndarray],
    parallelism: Parallelism,
    passes: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    encoder: Any = load_dense_encoder(
        MODEL, cache_dir=cache_dir, batch_size=16, threads=2, parallelism=parallelism
    )
    sizes: list[int] = []
    embed = encoder._embed

    def recording(batch: Any) -> Any:
        sizes.append(len(batch))
        return embed(batch)

    monkeypatch.setattr(encoder, "_embed", recording)

    vectors = encoder.encode(SENTENCES[:5])

    assert sorted(sizes, reverse=True) == passes
    np.testing.assert_allclose(vectors, embeddings[EmbeddingBackend.ONNX][:5], atol=1e-5)


def test_a_second_load_reuses_the_export(
    cache_dir: Path,
    encoders: dict[EmbeddingBackend, DenseEncoder],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    files = [export_dir(MODEL, cache_dir) / name for name in ("model.onnx", "model-int8.onnx")]
    before = [path.stat().st_mtime_ns for path in files]

    def no_export(*args: object) -> NoReturn:
        raise AssertionError(f"exported again: {args}")

    monkeypatch.setattr(onnx_export, "_exporter", no_export)
    monkeypatch.setattr(onnx_export, "_quantize_int8", no_export)
    for backend in (EmbeddingBackend.ONNX, EmbeddingBackend.ONNX_INT8):
        load_dense_encoder(MODEL, backend, cache_dir=cache_dir).encode(["still works"])

    assert [path.stat().st_mtime_ns for path in files] == before
    assert sorted(path.name for path in files[0].parent.iterdir()) == [
        "model-int8.onnx",
        "model.onnx",
    ]


def test_inference_needs_neither_torch_nor_sentence_transformers(
    cache_dir: Path, encoders: dict[EmbeddingBackend, DenseEncoder]
) -> None:
    script = (
        "import sys; from pathlib import Path\n"
        "from llmops.embedding.dense import load_dense_encoder\n"
        f"vectors = load_dense_encoder(cache_dir=Path({str(cache_dir)!r})).encode(['hello'])\n"
        "assert vectors.shape == (1, 384)\n"
        "heavy = {'torch', 'transformers', 'sentence_transformers'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    importing = subprocess.run(
        [
            sys.executable,
            "-c",
            "import llmops.embedding.dense, sys; assert 'numpy' in sys.modules;"
            " assert 'onnxruntime' not in sys.modules and 'torch' not in sys.modules",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    encoding = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )

    assert importing.returncode == 0, importing.stderr
    assert encoding.returncode == 0, encoding.stderr


def test_a_failed_export_leaves_no_file_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def half_written(model_dir: Path) -> Callable[[Path], None]:
        def write(target: Path) -> None:
            target.write_bytes(b"partial onnx")
            raise RuntimeError("exporter crashed")

        return write

    monkeypatch.setattr(onnx_export, "_exporter", half_written)

    with pytest.raises(RuntimeError, match="exporter crashed"):
        ensure_onnx_export(MODEL, tmp_path)

    assert list(export_dir(MODEL, tmp_path).iterdir()) == []


def test_the_fingerprint_changes_with_the_weights_or_config(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"hidden_size": 384}')
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"weights")
    first = model_fingerprint(tmp_path)

    os.utime(weights, ns=(1, 1))
    touched = model_fingerprint(tmp_path)
    (tmp_path / "config.json").write_text('{"hidden_size": 768}')
    reconfigured = model_fingerprint(tmp_path)

    assert len({first, touched, reconfigured}) == 3
    assert model_fingerprint(tmp_path) == reconfigured


@pytest.mark.parametrize("backend", list(EmbeddingBackend))
def test_an_unknown_model_path_is_refused(backend: EmbeddingBackend, tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError):
        load_dense_encoder(str(tmp_path / "no-such-model"), backend, cache_dir=tmp_path)


def linked_model(tmp_path: Path, name: str) -> Path:
    """A copy of the packaged model made of symlinks, so its configs can be edited."""
    source = resolve_model_dir(MODEL)
    target = tmp_path / name
    target.mkdir()
    for path in source.iterdir():
        if path.is_file():
            (target / path.name).symlink_to(path)
    return target


def test_cls_pooling_matches_sentence_transformers(tmp_path: Path) -> None:
    model_dir = linked_model(tmp_path, "minilm-cls")
    pooling = json.loads((resolve_model_dir(MODEL) / "1_Pooling" / "config.json").read_text())
    pooling |= {"pooling_mode_mean_tokens": False, "pooling_mode_cls_token": True}
    (model_dir / "1_Pooling").mkdir()
    (model_dir / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    texts = SENTENCES[:6]

    onnx = load_dense_encoder(str(model_dir), cache_dir=tmp_path, threads=2)
    torch = load_dense_encoder(str(model_dir), EmbeddingBackend.TORCH, cache_dir=tmp_path)

    assert onnx.model == "minilm-cls"
    assert cosines(onnx.encode(texts), torch.encode(texts)).min() >= 0.999
    mean = load_dense_encoder(MODEL, cache_dir=tmp_path, threads=2).encode(texts)
    assert cosines(onnx.encode(texts), mean).max() < 0.99


def test_a_pipeline_with_a_dense_layer_is_refused_by_onnx(tmp_path: Path) -> None:
    model_dir = linked_model(tmp_path, "minilm-dense")
    modules = json.loads((model_dir / "modules.json").read_text())
    modules.insert(
        2, {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}
    )
    (model_dir / "modules.json").unlink()
    (model_dir / "modules.json").write_text(json.dumps(modules))

    with pytest.raises(UnsupportedModelError, match="Dense"):
        load_dense_encoder(str(model_dir), cache_dir=tmp_path)
