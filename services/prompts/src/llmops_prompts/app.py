"""Versioned prompt registry with labels and change events.

Skeleton: issue #5 adds its behaviour.
"""

from fastapi import FastAPI

from llmops.service import create_service_app
from llmops_prompts.settings import PromptsSettings


def create_app(settings: PromptsSettings) -> FastAPI:
    return create_service_app(settings, description=__doc__ or "")
