"""The OpenAI chat-completions response format, which several SDKs share (openai, groq, and the
OpenAI-compatible servers behind them): what the choices say."""

from __future__ import annotations

from typing import Any

from .call import Call
from .fields import field, text


def read_choices(call: Call, response: Any) -> None:
    """Tool calls (the legacy single `function_call` counts as one) and the first finish reason."""
    choices = field(response, "choices") or ()
    tool_calls = 0
    for choice in choices:
        message = field(choice, "message")
        tool_calls += len(field(message, "tool_calls") or ())
        if field(message, "function_call") is not None:
            tool_calls += 1
    call.tool_calls = tool_calls
    if choices:
        call.finish_reason = text(field(choices[0], "finish_reason"))
