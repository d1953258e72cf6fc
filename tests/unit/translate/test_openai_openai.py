"""OpenAI inbound → OpenAI wire: a pass-through that touches nothing."""

from __future__ import annotations

from tollgate.gateway.pricing import Usage
from tollgate.gateway.translate.base import Context, Reply
from tollgate.gateway.translate.openai_openai import OpenAIPassthrough
from tollgate.gateway.translate.sse import Event


def test_the_body_reply_and_events_pass_unchanged():
    body = {"model": "x", "messages": [{"role": "user", "content": "hi"}], "n": 3}
    t = OpenAIPassthrough(Context(model="gpt-4o", request_id="r", include_usage=True))
    request = t.request(body)
    assert request.body is body and request.usage_event is True
    reply = Reply(b'{"id": "c"}', Usage(input_tokens=1))
    assert t.response(reply) is reply.body
    event = Event(b'{"choices": []}')
    assert t.feed(event, None) == (event,)


def test_the_usage_chunk_is_only_forwarded_when_the_client_asked():
    t = OpenAIPassthrough(Context(model="gpt-4o", request_id="r", include_usage=False))
    assert t.request({}).usage_event is False
