"""Bedrock Converse ("bedrock-converse"): what its stream looks like and which events commit.

ConverseStream answers with AWS event-stream frames (translate/eventstream.py); the adapter
turns each `event` frame into an `Event` named after its `:event-type`, with the JSON payload
as data: `messageStart` {role}, per content block an optional `contentBlockStart` (tool use:
{toolUseId, name}), `contentBlockDelta`… ({text} | {toolUse: {input: <partial JSON>}} |
{reasoningContent: {text | signature | redactedContent}}), `contentBlockStop`, then
`messageStop` {stopReason} and last `metadata` {usage, metrics} — the only event with usage,
for the whole request. Payloads may carry padding fields (`p`); readers ignore unknown fields.
Exception frames never become events: the adapter raises them as UpstreamErrors.
"""

from __future__ import annotations

from tollgate.gateway.translate.sse import Event

__all__ = ["END_EVENT", "LIFECYCLE", "commits"]

LIFECYCLE = frozenset({"messageStart", "contentBlockStart"})

END_EVENT = "metadata"
"""The last event of a complete stream (it follows `messageStop` and carries the usage)."""


def commits(event: Event) -> bool:
    """`messageStart` and a tool block's `contentBlockStart` come before any generated token
    (a throttling exception can still follow them); the first delta — or the end — commits."""
    return event.name not in LIFECYCLE
