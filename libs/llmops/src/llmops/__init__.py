"""Shared platform code for every LLMOps service."""
