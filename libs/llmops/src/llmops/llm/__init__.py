"""The OpenAI-compatible API the gateway serves and the inference service speaks."""
