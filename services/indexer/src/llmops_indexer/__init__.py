"""Embeds chunks into Qdrant and serves retrieval."""
