"""Embedding models: location, tokenizers, dense and sparse encoders.

Needs the `llmops[embeddings]` extra (dense encoders) or `llmops[tokenizer]` (tokenizers only).
"""
