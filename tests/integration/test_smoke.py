"""The demo config answers through the official openai SDK with no provider account."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

from tests.support.gateway import GatewayProcess, start_gateway

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tollgate.yaml"


@pytest.fixture(scope="module")
def demo_gateway(tmp_path_factory: pytest.TempPathFactory) -> GatewayProcess:
    path = tmp_path_factory.mktemp("demo") / "tollgate.yaml"
    gateway = start_gateway(path, config=EXAMPLE.read_text(), env={"OPENAI_API_KEY": ""})
    yield gateway
    gateway.stop()


def test_the_demo_key_gets_a_mock_answer_when_openai_has_no_key(demo_gateway: GatewayProcess):
    client = openai.OpenAI(base_url=demo_gateway.base_url, api_key="tg-demo-key")
    raw = client.chat.completions.with_raw_response.create(
        model="default-chat", messages=[{"role": "user", "content": "hello gateway"}]
    )
    completion = raw.parse()
    assert completion.choices[0].message.content.endswith("You said: hello gateway")
    assert raw.headers["x-tollgate-provider"] == "mock"
    assert raw.headers["x-tollgate-attempts"] == "2"
    assert completion.usage is not None and completion.usage.total_tokens > 0
