"""Prompt templates shared by the prompts service and the gateway's prompt cache."""

from llmops.prompting.canary import Split, SplitArm
from llmops.prompting.requests import (
    DEFAULT_LABEL,
    LABEL_PATTERN,
    NAME_PATTERN,
    RenderRequest,
    label_to_resolve,
)
from llmops.prompting.template import (
    CompiledPrompt,
    CompiledPrompts,
    InvalidPromptError,
    PromptSpec,
    RenderedMessage,
    RenderedPrompt,
    RenderError,
    TemplateMessage,
    VariableProblem,
)

__all__ = [
    "DEFAULT_LABEL",
    "LABEL_PATTERN",
    "NAME_PATTERN",
    "CompiledPrompt",
    "CompiledPrompts",
    "InvalidPromptError",
    "PromptSpec",
    "RenderError",
    "RenderRequest",
    "RenderedMessage",
    "RenderedPrompt",
    "Split",
    "SplitArm",
    "TemplateMessage",
    "VariableProblem",
    "label_to_resolve",
]
