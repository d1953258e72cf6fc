"""Amazon Bedrock behind the gateway: OpenAI and Anthropic SDK requests served by Converse /
ConverseStream on the fake Bedrock (which verifies every SigV4 signature with botocore and
answers streams in AWS event-stream frames); embeddings through InvokeModel; usage and cost
against hand-computed figures."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from tests.fakes.bedrock_upstream import AccessKey, FakeBedrock, Fault, running_fake_bedrock
from tests.fakes.openai_upstream import FakeOpenAI
from tests.integration.helpers import (
    FAST_TIMEOUTS,
    anthropic_client,
    provider,
    running_gateway,
    sync_client,
    user,
    wait_for_log,
)
from tests.support.config import config_doc, key_entry
from tests.support.gateway import GatewayProcess

TOKEN = "tg-bedrock-tenant-5b2c"
KEY = AccessKey(session_token="fake-session-token-for-tests")
GLOBAL = "global.anthropic.claude-sonnet-4-5-20250929-v1:0"
REGIONAL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
PROFILE_ARN = ("arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
               "global.anthropic.claude-sonnet-4-5-20250929-v1:0")
TITAN = "amazon.titan-embed-text-v2:0"
COHERE = "cohere.embed-english-v3"
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
OPENAI_TOOLS = [{"type": "function", "function": {"name": "weather", "description": "Weather",
                                                  "parameters": WEATHER}}]

# Bedrock reports inputTokens WITHOUT the cache classes: 1000 plain + 2000 read + 400 written
# (100 of them with a one-hour TTL) = 3400 input tokens, 200 output.
USAGE = {"input_tokens": 1000, "output_tokens": 200, "cache_read": 2000, "cache_write": 400,
         "cache_write_1h": 100}
# global profile, Anthropic's list price per million: 3 input, 0.30 read, 3.75 5-minute write,
# 6 one-hour write, 15 output: 1000*3 + 2000*0.3 + 300*3.75 + 100*6 + 200*15 = 8325 µUSD
GLOBAL_COST = "0.008325"
# us. profile, +10%: 1000*3.3 + 2000*0.33 + 300*4.125 + 100*6.6 + 200*16.5 = 9157.5 → 9158 µUSD
REGIONAL_COST = "0.009158"
RETRIES_OUTLASTED = 4


@pytest.fixture(scope="module")
def bedrock_server() -> Iterator[FakeBedrock]:
    with running_fake_bedrock(KEY) as fake:
        yield fake


@pytest.fixture
def bedrock(bedrock_server: FakeBedrock) -> Iterator[FakeBedrock]:
    bedrock_server.reset()
    yield bedrock_server
    assert bedrock_server.rejections == [], "the gateway sent a request Bedrock would refuse"
    bedrock_server.reset()


def bedrock_provider(fake: FakeBedrock, **extra: Any) -> dict[str, Any]:
    entry = {"name": "bedrock", "type": "bedrock", "region": KEY.region, "baseURL": fake.base_url,
             "accessKeyId": {"env": "TEST_AWS_KEY_ID"},
             "secretAccessKey": {"env": "TEST_AWS_SECRET"},
             "sessionToken": {"env": "TEST_AWS_TOKEN"},
             "models": [GLOBAL, REGIONAL, PROFILE_ARN, TITAN, COHERE],
             "timeouts": FAST_TIMEOUTS}
    return {**entry, **extra}


ENV = {"TEST_AWS_KEY_ID": KEY.access_key_id, "TEST_AWS_SECRET": KEY.secret_access_key,
       "TEST_AWS_TOKEN": KEY.session_token or ""}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, bedrock_server: FakeBedrock,
            backup_upstream_server: FakeOpenAI) -> Iterator[GatewayProcess]:
    config = config_doc(
        providers=[bedrock_provider(bedrock_server),
                   provider("backup", backup_upstream_server, key_env=None, models=("gpt-4o",))],
        keys=[key_entry("bedrock-tenant", TOKEN),
              key_entry("with-fallback", TOKEN + "-fb",
                        fallbacks=[{"provider": "bedrock", "model": GLOBAL},
                                   {"provider": "backup", "model": "gpt-4o"}])],
    )
    with running_gateway(tmp_path_factory.mktemp("bedrock"), config, ENV) as process:
        yield process


def decision(gateway: GatewayProcess, request_id: str) -> dict[str, Any]:
    return wait_for_log(gateway, lambda e: e.get("event") == "request"
                        and e.get("request_id") == request_id)


def test_an_openai_request_is_served_by_converse_with_exact_usage_and_cost(
        gateway: GatewayProcess, bedrock: FakeBedrock):
    bedrock.set_usage(**USAGE)
    with sync_client(gateway, TOKEN) as client:
        raw = client.chat.completions.with_raw_response.create(
            model=GLOBAL, max_tokens=300, temperature=0.2, stop=["END"],
            messages=[{"role": "system", "content": "be brief"}, *user("hello bedrock")])
    completion = raw.parse()
    assert completion.choices[0].message.content == "Echo: hello bedrock"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens,
            completion.usage.prompt_tokens_details.cached_tokens) == (3400, 200, 2000)
    assert raw.headers["x-tollgate-provider"] == "bedrock"
    assert raw.headers["x-tollgate-cost-usd"] == GLOBAL_COST
    [sent] = bedrock.requests
    assert (sent.action, sent.model) == ("converse", GLOBAL)
    assert sent.headers["x-amz-security-token"] == KEY.session_token
    assert sent.headers["authorization"].startswith(
        f"AWS4-HMAC-SHA256 Credential={KEY.access_key_id}/")
    assert sent.body == {
        "messages": [{"role": "user", "content": [{"text": "hello bedrock"}]}],
        "system": [{"text": "be brief"}],
        "inferenceConfig": {"maxTokens": 300, "temperature": 0.2, "stopSequences": ["END"]}}


def test_a_regional_profile_pays_the_regional_premium(gateway: GatewayProcess,
                                                      bedrock: FakeBedrock):
    bedrock.set_usage(**USAGE)
    with sync_client(gateway, TOKEN) as client:
        raw = client.chat.completions.with_raw_response.create(
            model=REGIONAL, messages=user("hi"))
    assert raw.headers["x-tollgate-cost-usd"] == REGIONAL_COST


def test_a_model_id_with_colons_and_slashes_is_signed_as_sent(gateway: GatewayProcess,
                                                             bedrock: FakeBedrock):
    with sync_client(gateway, TOKEN) as client:
        completion = client.chat.completions.create(model=PROFILE_ARN, messages=user("arn"))
    assert completion.choices[0].message.content == "Echo: arn"
    [sent] = bedrock.requests
    assert sent.model == PROFILE_ARN
    assert "%2F" in sent.path  # the ARN's slash stays inside one path segment


def test_an_openai_stream_is_decoded_from_event_stream_frames(gateway: GatewayProcess,
                                                              bedrock: FakeBedrock):
    bedrock.set_usage(**USAGE)
    with sync_client(gateway, TOKEN) as client:
        stream = client.chat.completions.create(
            model=GLOBAL, messages=user("stream these words"), stream=True,
            stream_options={"include_usage": True})
        chunks = list(stream)
        request_id = stream.response.headers["x-request-id"]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: stream these words"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    usage = chunks[-1].usage
    assert usage is not None and chunks[-1].choices == []
    assert (usage.prompt_tokens, usage.completion_tokens) == (3400, 200)
    assert decision(gateway, request_id)["cost_usd"] == GLOBAL_COST
    assert bedrock.requests[0].action == "converse-stream"
    assert bedrock.requests[0].headers["accept"] == "application/vnd.amazon.eventstream"


def test_tool_calls_round_trip_through_tool_use_and_tool_result(gateway: GatewayProcess,
                                                                bedrock: FakeBedrock):
    bedrock.reply_with_tool_use("weather", {"city": "Oslo"})
    with sync_client(gateway, TOKEN) as client:
        first = client.chat.completions.create(model=GLOBAL, messages=user("weather?"),
                                               tools=OPENAI_TOOLS, tool_choice="required")
        message = first.choices[0].message
        assert first.choices[0].finish_reason == "tool_calls"
        [call] = message.tool_calls or []
        assert (call.function.name, json.loads(call.function.arguments)) == (
            "weather", {"city": "Oslo"})
        second = client.chat.completions.create(
            model=GLOBAL, tools=OPENAI_TOOLS,
            messages=[*user("weather?"), message.model_dump(exclude_none=True),
                      {"role": "tool", "tool_call_id": call.id, "content": "9C and clear"}])
    assert second.choices[0].message.content == "Echo: 9C and clear"
    first_sent, second_sent = bedrock.requests
    assert first_sent.body["toolConfig"] == {
        "tools": [{"toolSpec": {"name": "weather", "description": "Weather",
                                "inputSchema": {"json": WEATHER}}}],
        "toolChoice": {"any": {}}}
    assert second_sent.body["messages"][1:] == [
        {"role": "assistant", "content": [
            {"text": "Let me check."},
            {"toolUse": {"toolUseId": call.id, "name": "weather", "input": {"city": "Oslo"}}}]},
        {"role": "user", "content": [
            {"toolResult": {"toolUseId": call.id, "content": [{"text": "9C and clear"}]}}]}]


def test_a_streamed_tool_call_arrives_as_openai_tool_call_deltas(gateway: GatewayProcess,
                                                                 bedrock: FakeBedrock):
    bedrock.reply_with_tool_use("weather", {"city": "Paris"})
    with sync_client(gateway, TOKEN) as client:
        chunks = list(client.chat.completions.create(
            model=GLOBAL, messages=user("weather?"), tools=OPENAI_TOOLS, stream=True))
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    calls = [call for d in deltas for call in d.tool_calls or ()]
    assert calls[0].function is not None and calls[0].function.name == "weather"
    arguments = "".join(c.function.arguments or "" for c in calls if c.function)
    assert json.loads(arguments) == {"city": "Paris"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


def test_an_anthropic_request_is_served_by_bedrock(gateway: GatewayProcess,
                                                   bedrock: FakeBedrock):
    bedrock.set_usage(**USAGE)
    with anthropic_client(gateway, TOKEN) as client:
        raw = client.messages.with_raw_response.create(
            model=GLOBAL, max_tokens=100, system="be brief",
            messages=[{"role": "user", "content": [
                {"type": "text", "text": "look", "cache_control": {"type": "ephemeral"}},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                             "data": "iVBORw0KGgo="}}]}])
    message = raw.parse()
    assert message.content[0].type == "text" and message.content[0].text == "Echo: look"
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens,
            message.usage.cache_creation_input_tokens, message.usage.output_tokens) == (
        1000, 2000, 400, 200)
    assert raw.headers["x-tollgate-cost-usd"] == GLOBAL_COST
    [sent] = bedrock.requests
    assert sent.body["messages"] == [{"role": "user", "content": [
        {"text": "look"}, {"cachePoint": {"type": "default"}},
        {"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}}]}]


def test_an_anthropic_stream_with_a_tool_call_is_served_by_bedrock(gateway: GatewayProcess,
                                                                   bedrock: FakeBedrock):
    bedrock.set_usage(**USAGE)
    bedrock.reply_with_tool_use("weather", {"city": "Rome"})
    tools = [{"name": "weather", "description": "Weather", "input_schema": WEATHER}]
    with anthropic_client(gateway, TOKEN) as client:
        with client.messages.stream(model=GLOBAL, max_tokens=50, tools=tools,
                                    messages=[{"role": "user", "content": "weather?"}]) as stream:
            names = [event.type for event in stream]
            message = stream.get_final_message()
    assert names[0] == "message_start" and names[-1] == "message_stop"
    [call] = [b for b in message.content if b.type == "tool_use"]
    assert (call.name, call.input) == ("weather", {"city": "Rome"})
    assert message.stop_reason == "tool_use"
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens,
            message.usage.output_tokens) == (1000, 2000, 200)


def test_throttling_fails_over_to_the_next_target(gateway: GatewayProcess, bedrock: FakeBedrock,
                                                  backup_upstream: FakeOpenAI):
    # enough throttles to outlast same-target retries, whatever the retry policy allows
    bedrock.script(*[Fault(status=429, error_type="ThrottlingException")] * RETRIES_OUTLASTED)
    with sync_client(gateway, TOKEN + "-fb") as client:
        raw = client.chat.completions.with_raw_response.create(model=GLOBAL,
                                                               messages=user("hi"))
    assert raw.headers["x-tollgate-provider"] == "backup"
    assert int(raw.headers["x-tollgate-attempts"]) >= 2
    assert len(backup_upstream.requests) == 1


def test_a_throttling_exception_before_any_content_fails_over_too(
        gateway: GatewayProcess, bedrock: FakeBedrock, backup_upstream: FakeOpenAI):
    # messageStart, then throttlingException (as often as retries may try)
    bedrock.script(*[Fault(exception_after=1)] * RETRIES_OUTLASTED)
    with sync_client(gateway, TOKEN + "-fb") as client:
        stream = client.chat.completions.create(model=GLOBAL, messages=user("hi"), stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        served_by = stream.response.headers["x-tollgate-provider"]
    assert served_by == "backup" and text == "Echo: hi"


def test_a_validation_exception_is_the_callers_error(gateway: GatewayProcess,
                                                     bedrock: FakeBedrock):
    bedrock.script(Fault(status=400, error_type="ValidationException",
                         message="maxTokens exceeds the model limit"))
    with sync_client(gateway, TOKEN + "-fb") as client:
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model=GLOBAL, messages=user("hi"))
    assert "maxTokens exceeds the model limit" in str(caught.value)


def test_embeddings_through_titan_and_cohere_in_the_sdks_default_base64(
        gateway: GatewayProcess, bedrock: FakeBedrock):
    with sync_client(gateway, TOKEN) as client:
        titan = client.embeddings.create(model=TITAN, input=["hello world", "x"],
                                         dimensions=4)
        cohere = client.embeddings.create(model=COHERE, input="three little words")
        floats = client.embeddings.with_raw_response.create(
            model=COHERE, input="a b", encoding_format="float")
    assert [len(d.embedding) for d in titan.data] == [4, 4]
    assert titan.data[0].embedding[:2] == pytest.approx([0.11, 0.21])
    assert titan.usage.prompt_tokens == 5  # Titan counts (2+1) + (1+1) in the fake
    assert cohere.usage.prompt_tokens == 3  # from X-Amzn-Bedrock-Input-Token-Count
    assert json.loads(floats.content)["data"][0]["embedding"] == [0.03, 0.13, 0.23]
    titan_calls = [r for r in bedrock.requests if r.model == TITAN]
    assert [r.body for r in titan_calls] in (
        [{"inputText": "hello world", "dimensions": 4, "normalize": True},
         {"inputText": "x", "dimensions": 4, "normalize": True}],
        [{"inputText": "x", "dimensions": 4, "normalize": True},
         {"inputText": "hello world", "dimensions": 4, "normalize": True}])


def test_base64_embeddings_are_little_endian_float32(gateway: GatewayProcess,
                                                     bedrock: FakeBedrock):
    with sync_client(gateway, TOKEN) as client:
        raw = client.embeddings.with_raw_response.create(model=COHERE, input="a b",
                                                         encoding_format="base64")
    encoded = json.loads(raw.content)["data"][0]["embedding"]
    assert struct.unpack("<3f", base64.b64decode(encoded)) == pytest.approx((0.03, 0.13, 0.23))


def test_the_default_credential_chain_signs_with_the_environment(
        tmp_path_factory: pytest.TempPathFactory, bedrock: FakeBedrock):
    entry = bedrock_provider(bedrock)
    for field in ("accessKeyId", "secretAccessKey", "sessionToken"):
        del entry[field]
    env = {"AWS_ACCESS_KEY_ID": KEY.access_key_id, "AWS_SECRET_ACCESS_KEY": KEY.secret_access_key,
           "AWS_SESSION_TOKEN": KEY.session_token or "", "AWS_EC2_METADATA_DISABLED": "true",
           "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}
    config = config_doc(providers=[entry], keys=[key_entry("chain", TOKEN)])
    with running_gateway(tmp_path_factory.mktemp("bedrock-chain"), config, env) as process:
        with sync_client(process, TOKEN) as client:
            completion = client.chat.completions.create(model=GLOBAL, messages=user("chain"))
    assert completion.choices[0].message.content == "Echo: chain"


def test_wrong_credentials_are_the_gateways_problem_not_the_callers(
        tmp_path_factory: pytest.TempPathFactory, bedrock: FakeBedrock):
    config = config_doc(providers=[bedrock_provider(bedrock)], keys=[key_entry("bad", TOKEN)])
    env = {**ENV, "TEST_AWS_SECRET": "not-the-secret"}
    with running_gateway(tmp_path_factory.mktemp("bedrock-bad"), config, env) as process:
        with sync_client(process, TOKEN) as client:
            with pytest.raises(openai.APIStatusError) as caught:
                client.chat.completions.create(model=GLOBAL, messages=user("x"))
    assert caught.value.status_code >= 500
    assert "not-the-secret" not in str(caught.value.body)
    assert bedrock.rejections and "signature" in bedrock.rejections[0]
    bedrock.reset()  # the rejection was the point


def test_the_anthropic_sdk_sees_bedrock_errors_in_its_own_shape(gateway: GatewayProcess,
                                                                bedrock: FakeBedrock):
    bedrock.script(Fault(status=400, error_type="ValidationException", message="bad input"))
    with anthropic_client(gateway, TOKEN) as client:
        with pytest.raises(anthropic.BadRequestError) as caught:
            client.messages.create(model=GLOBAL, max_tokens=5,
                                   messages=[{"role": "user", "content": "x"}])
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["error"]["type"] == "invalid_request_error"
