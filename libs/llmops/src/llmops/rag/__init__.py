"""Retrieval-augmented generation: how documents, chunks and searches are named and asked for.

Shared by the gateway (uploads, search proxy), ingestion (jobs), the indexer (search)
and the CLI, so every caller speaks the same request and response shapes.
"""
