"""Google Vertex AI behind the gateway: OpenAI and Anthropic SDK requests served by Gemini, Claude
on Vertex through the Anthropic shape, and text embeddings — against the fake Vertex, whose
OAuth endpoint mints real tokens for google-auth from a service-account key and whose model
endpoints check them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.vertex_upstream import PROJECT, FakeVertex, running_fake_vertex
from tests.integration.helpers import (
    FAST_TIMEOUTS,
    anthropic_client,
    running_gateway,
    sync_client,
    user,
    wait_for_log,
)
from tests.support.config import config_doc, key_entry
from tests.support.gateway import GatewayProcess

TOKEN = "tg-vertex-tenant-91ad"
GEMINI = "gemini-2.5-pro"
CLAUDE = "claude-sonnet-4-5@20250929"
EMBED = "text-embedding-005"
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}

# promptTokenCount INCLUDES the cached tokens; output = candidates + thoughts.
USAGE = {"prompt": 10_000, "candidates": 300, "thoughts": 200, "cached": 4_000}
# gemini-2.5-pro ≤200k: 1.25 input, 0.125 cached, 10 output per million:
# 6000*1.25 + 4000*0.125 + 500*10 = 7500 + 500 + 5000 = 13000 µUSD
COST = "0.013"
# above 200k the whole request is billed at 2.50 / 0.25 / 15:
# (250000-4000)*2.5 + 4000*0.25 + 500*15 = 615000 + 1000 + 7500 = 623500 µUSD
LONG_USAGE = {"prompt": 250_000, "candidates": 300, "thoughts": 200, "cached": 4_000}
LONG_COST = "0.6235"


@pytest.fixture(scope="module")
def vertex_server() -> Iterator[FakeVertex]:
    with running_fake_vertex() as fake:
        yield fake


@pytest.fixture
def vertex(vertex_server: FakeVertex) -> Iterator[FakeVertex]:
    vertex_server.reset()
    yield vertex_server
    assert vertex_server.rejections == [], "the gateway sent a body Vertex would refuse"
    vertex_server.reset()


def vertex_provider(name: str, fake: FakeVertex, key_file: Path | None, **extra: Any
                    ) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "type": "vertex", "project": PROJECT,
                             "region": "europe-west4", "baseURL": fake.base_url,
                             "timeouts": FAST_TIMEOUTS, **extra}
    if key_file is not None:
        entry["serviceAccount"] = {"file": str(key_file)}
    return entry


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory,
            vertex_server: FakeVertex) -> Iterator[GatewayProcess]:
    directory = tmp_path_factory.mktemp("vertex")
    key_file = directory / "service-account.json"
    key_file.write_text(json.dumps(vertex_server.service_account()))
    config = config_doc(
        providers=[vertex_provider("gemini", vertex_server, key_file,
                                   models=[GEMINI, EMBED]),
                   vertex_provider("claude-vertex", vertex_server, key_file,
                                   publisher="anthropic", region="global", models=[CLAUDE])],
        keys=[key_entry("vertex-tenant", TOKEN)],
    )
    with running_gateway(directory, config, {}) as process:
        yield process


def decision(gateway: GatewayProcess, request_id: str) -> dict[str, Any]:
    return wait_for_log(gateway, lambda e: e.get("event") == "request"
                        and e.get("request_id") == request_id)


def test_an_openai_request_is_served_by_gemini_with_a_minted_token(gateway: GatewayProcess,
                                                                    vertex: FakeVertex):
    vertex.set_usage(**USAGE)
    with sync_client(gateway, TOKEN) as client:
        raw = client.chat.completions.with_raw_response.create(
            model=GEMINI, max_tokens=256, temperature=1.4, seed=7,
            messages=[{"role": "system", "content": "be brief"}, *user("hello gemini")])
    completion = raw.parse()
    assert completion.choices[0].message.content == "Echo: hello gemini"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens,
            completion.usage.prompt_tokens_details.cached_tokens,
            completion.usage.completion_tokens_details.reasoning_tokens) == (
        10_000, 500, 4_000, 200)
    assert raw.headers["x-tollgate-cost-usd"] == COST
    [sent] = vertex.requests
    assert sent.path == (f"/v1/projects/{PROJECT}/locations/europe-west4/publishers/google/"
                         f"models/{GEMINI}:generateContent")
    assert sent.headers["authorization"].startswith("Bearer ya29.fake-")
    assert sent.body == {
        "contents": [{"role": "user", "parts": [{"text": "hello gemini"}]}],
        "systemInstruction": {"parts": [{"text": "be brief"}]},
        "generationConfig": {"maxOutputTokens": 256, "temperature": 1.4, "seed": 7}}


def test_a_prompt_over_200k_tokens_is_billed_at_the_long_context_tier(gateway: GatewayProcess,
                                                                      vertex: FakeVertex):
    vertex.set_usage(**LONG_USAGE)
    with sync_client(gateway, TOKEN) as client:
        raw = client.chat.completions.with_raw_response.create(model=GEMINI,
                                                               messages=user("long"))
    assert raw.headers["x-tollgate-cost-usd"] == LONG_COST


def test_an_openai_stream_takes_the_last_running_usage_total(gateway: GatewayProcess,
                                                             vertex: FakeVertex):
    vertex.set_usage(**USAGE)
    with sync_client(gateway, TOKEN) as client:
        stream = client.chat.completions.create(
            model=GEMINI, messages=user("four words right here"), stream=True,
            stream_options={"include_usage": True})
        chunks = list(stream)
        request_id = stream.response.headers["x-request-id"]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: four words right here"
    usage = chunks[-1].usage
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (10_000, 500)
    assert decision(gateway, request_id)["cost_usd"] == COST
    assert vertex.requests[0].action == "streamGenerateContent"


def test_function_calls_round_trip_by_name(gateway: GatewayProcess, vertex: FakeVertex):
    vertex.reply_with_function_call("weather", {"city": "Lima"})
    tools = [{"type": "function", "function": {"name": "weather", "parameters": WEATHER}}]
    with sync_client(gateway, TOKEN) as client:
        first = client.chat.completions.create(model=GEMINI, messages=user("weather?"),
                                               tools=tools, tool_choice="required")
        message = first.choices[0].message
        [call] = message.tool_calls or []
        assert first.choices[0].finish_reason == "tool_calls"
        assert json.loads(call.function.arguments) == {"city": "Lima"}
        second = client.chat.completions.create(
            model=GEMINI, tools=tools,
            messages=[*user("weather?"), message.model_dump(exclude_none=True),
                      {"role": "tool", "tool_call_id": call.id, "content": "warm"}])
    assert second.choices[0].message.content == "Echo: warm"
    first_sent, second_sent = vertex.requests
    assert first_sent.body["tools"] == [{"functionDeclarations": [
        {"name": "weather", "parametersJsonSchema": WEATHER}]}]
    assert first_sent.body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    assert second_sent.body["contents"][1:] == [
        {"role": "model", "parts": [{"text": "Let me check."},
                                    {"functionCall": {"name": "weather",
                                                      "args": {"city": "Lima"}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "weather",
                                                         "response": {"content": "warm"}}}]}]


def test_an_anthropic_request_and_stream_are_served_by_gemini(gateway: GatewayProcess,
                                                              vertex: FakeVertex):
    vertex.set_usage(**USAGE)
    with anthropic_client(gateway, TOKEN) as client:
        message = client.messages.create(model=GEMINI, max_tokens=64, system="brief",
                                         messages=[{"role": "user", "content": "hola"}])
        with client.messages.stream(model=GEMINI, max_tokens=64,
                                    messages=[{"role": "user", "content": "hola"}]) as stream:
            names = [event.type for event in stream]
            streamed = stream.get_final_message()
    assert message.content[0].type == "text" and message.content[0].text == "Echo: hola"
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens,
            message.usage.output_tokens) == (6_000, 4_000, 500)
    assert names[0] == "message_start" and names[-1] == "message_stop"
    assert streamed.content[0].type == "text" and streamed.content[0].text == "Echo: hola"
    assert streamed.usage.output_tokens == 500


def test_claude_on_vertex_speaks_the_anthropic_shape(gateway: GatewayProcess,
                                                     vertex: FakeVertex):
    with anthropic_client(gateway, TOKEN) as client:
        message = client.messages.create(model=CLAUDE, max_tokens=64,
                                         messages=[{"role": "user", "content": "bonjour"}])
        with client.messages.stream(model=CLAUDE, max_tokens=64,
                                    messages=[{"role": "user", "content": "salut"}]) as stream:
            streamed = stream.get_final_message()
    with sync_client(gateway, TOKEN) as openai_client:
        completion = openai_client.chat.completions.create(model=CLAUDE, messages=user("hej"))
    assert message.content[0].type == "text" and message.content[0].text == "Echo: bonjour"
    assert streamed.content[0].type == "text" and streamed.content[0].text == "Echo: salut"
    assert completion.choices[0].message.content == "Echo: hej"
    raw, stream_call, _ = vertex.requests
    assert raw.path.endswith(f"/locations/global/publishers/anthropic/models/{CLAUDE}:rawPredict")
    assert raw.body["anthropic_version"] == "vertex-2023-10-16" and "model" not in raw.body
    assert stream_call.action == "streamRawPredict" and stream_call.body["stream"] is True


def test_embeddings_through_predict(gateway: GatewayProcess, vertex: FakeVertex):
    with sync_client(gateway, TOKEN) as client:
        result = client.embeddings.create(model=EMBED, input=["hello world", "x"], dimensions=4)
    assert [len(d.embedding) for d in result.data] == [4, 4]
    assert result.usage.prompt_tokens == 5  # (2+1) + (1+1) tokens in the fake
    [sent] = vertex.requests
    assert sent.body == {"instances": [{"content": "hello world"}, {"content": "x"}],
                         "parameters": {"autoTruncate": False, "outputDimensionality": 4}}


def test_application_default_credentials_serve_when_no_key_is_configured(
        tmp_path_factory: pytest.TempPathFactory, vertex: FakeVertex):
    directory = tmp_path_factory.mktemp("vertex-adc")
    key_file = directory / "adc.json"
    key_file.write_text(json.dumps(vertex.service_account()))
    config = config_doc(providers=[vertex_provider("adc", vertex, None, models=[GEMINI])],
                        keys=[key_entry("adc", TOKEN)])
    env = {"GOOGLE_APPLICATION_CREDENTIALS": str(key_file)}  # Application Default Credentials
    with running_gateway(directory, config, env) as process:
        with sync_client(process, TOKEN) as client:
            completion = client.chat.completions.create(model=GEMINI, messages=user("adc"))
    assert completion.choices[0].message.content == "Echo: adc"
