"""OpenAI-compatible inference server and Kafka batch worker."""
