"""Document ingestion worker: extraction, cleaning, chunking."""
