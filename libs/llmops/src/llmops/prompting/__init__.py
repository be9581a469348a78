"""Prompt templates shared by the prompts service and the gateway's prompt cache."""

from llmops.prompting.canary import Split, SplitArm
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
    "CompiledPrompt",
    "CompiledPrompts",
    "InvalidPromptError",
    "PromptSpec",
    "RenderError",
    "RenderedMessage",
    "RenderedPrompt",
    "Split",
    "SplitArm",
    "TemplateMessage",
    "VariableProblem",
]
