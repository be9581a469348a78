"""LLM metrics, cost, drift and alerts from the event stream."""
