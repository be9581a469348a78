"""BM25 sparse vectors: term-frequency weights the vector store combines with its own IDF."""

from __future__ import annotations

import pytest

from llmops.embedding.sparse import Bm25Encoder, SparseVector, term_id, tokenize


def weight_of(vector: SparseVector, term: str) -> float:
    return vector.values[vector.indices.index(term_id(term))]


def test_a_repeated_term_weighs_more_but_saturates_below_k1_plus_one() -> None:
    encoder = Bm25Encoder(k1=1.2, b=0.0)
    weights = [
        weight_of(encoder.encode_documents([" ".join(["kafka"] * tf)])[0], "kafka")
        for tf in (1, 2, 5, 50, 500)
    ]

    assert weights == sorted(weights)
    assert len(set(weights)) == len(weights)
    assert weights[0] == pytest.approx(1.0)
    assert all(weight < 1.2 + 1 for weight in weights)
    assert weights[-1] == pytest.approx(2.2, abs=0.01)


def test_document_weight_follows_the_bm25_formula_with_length_normalisation() -> None:
    encoder = Bm25Encoder(k1=1.2, b=0.75, avg_doc_tokens=150.0)

    short, long = encoder.encode_documents(
        ["kafka kafka broker", "kafka kafka " + " ".join(f"word{n}" for n in range(298))]
    )

    expected = 2 * 2.2 / (2 + 1.2 * (1 - 0.75 + 0.75 * 3 / 150))
    assert weight_of(short, "kafka") == pytest.approx(expected)
    assert weight_of(long, "kafka") < weight_of(short, "kafka")


def test_query_terms_appear_in_a_document_containing_the_words() -> None:
    encoder = Bm25Encoder()
    document = encoder.encode_documents(["Kafka partitions messages by key; the user's offsets"])[0]

    query = encoder.encode_query("Which KAFKA partitions have the user offsets?")

    assert query.values == [1.0] * len(query.indices)
    assert len(query.indices) == 4
    assert set(query.indices) <= set(document.indices)


def test_stopwords_are_dropped_and_possessives_stripped() -> None:
    # "it's" loses its "'s" and is then the stopword "it".
    assert tokenize("The cat is on the mat, and it's the user's cat") == [
        "cat",
        "mat",
        "user",
        "cat",
    ]
    assert Bm25Encoder().encode_query("the of and is to") == SparseVector([], [])


def test_words_are_unicode_aware_and_casefolded() -> None:
    fullwidth_kafka = "\uff2b\uff41\uff46\uff4b\uff41"

    assert tokenize(f"GRÖSSE größe {fullwidth_kafka} reset_password 東京") == [
        "grösse",
        "grösse",
        "kafka",
        "reset",
        "password",
        "東京",
    ]


def test_term_ids_are_stable_31_bit_numbers_with_sorted_indices() -> None:
    vector = Bm25Encoder().encode_documents(["zebra apple mango kafka broker topic"])[0]

    # Ids are stored in the vector collections: they must not change between processes
    # or releases (Python's hash() would).
    assert term_id("kafka") == 1539077399
    assert vector.indices == sorted(vector.indices)
    assert all(0 <= index < 2**31 for index in vector.indices)
    assert Bm25Encoder().encode_documents(["zebra apple mango kafka broker topic"])[0] == vector


def test_colliding_terms_merge_into_one_dimension() -> None:
    assert term_id("uejgtcuo") == term_id("iiwucoup")
    encoder = Bm25Encoder(b=0.0)

    merged = encoder.encode_documents(["uejgtcuo iiwucoup"])[0]
    repeated = encoder.encode_documents(["uejgtcuo uejgtcuo"])[0]

    assert merged == repeated
    assert len(merged.indices) == 1
    assert encoder.encode_query("uejgtcuo iiwucoup").indices == merged.indices


@pytest.mark.parametrize("text", ["", "   ", "?!, ...", "the and of"])
def test_text_without_terms_gives_an_empty_vector(text: str) -> None:
    encoder = Bm25Encoder()

    assert encoder.encode_documents([text]) == [SparseVector([], [])]
    assert encoder.encode_query(text) == SparseVector([], [])
    assert encoder.encode_documents([]) == []


@pytest.mark.parametrize("params", [{"k1": -0.1}, {"b": 1.5}, {"b": -0.1}, {"avg_doc_tokens": 0.0}])
def test_invalid_parameters_are_refused(params: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="k1 >= 0"):
        Bm25Encoder(**params)
