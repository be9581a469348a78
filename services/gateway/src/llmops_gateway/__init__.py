"""Public OpenAI-compatible API: keys, quotas, routing, caches."""
