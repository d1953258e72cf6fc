"""Anthropic inbound → Anthropic wire: a pass-through that forwards the client's beta header."""

from __future__ import annotations

from tollgate.gateway.translate.anthropic_anthropic import AnthropicPassthrough
from tollgate.gateway.translate.base import Context, Reply
from tollgate.gateway.translate.sse import Event


def test_the_body_reply_and_events_pass_unchanged_with_the_beta_header():
    body = {"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}],
            "thinking": {"type": "enabled", "budget_tokens": 1024}}
    context = Context(model="claude-sonnet-4-6", request_id="r",
                      headers={"anthropic-beta": "context-management-2025-06-27"})
    t = AnthropicPassthrough(context)
    request = t.request(body)
    assert request.body is body
    assert dict(request.headers) == {"anthropic-beta": "context-management-2025-06-27"}
    reply = Reply(b'{"id": "msg"}', None)
    assert t.response(reply) is reply.body
    event = Event(b'{"type":"ping"}', "ping")
    assert t.feed(event, None) == (event,)
