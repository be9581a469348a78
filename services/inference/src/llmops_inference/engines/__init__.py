"""Model engines behind one interface: transformers (in process), remote, vLLM (a child process)."""
