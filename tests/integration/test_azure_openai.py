"""Azure OpenAI behind the gateway: OpenAI requests passed through to a deployment, with the
api-version and the api-key (or an Entra ID bearer token), embeddings included; Anthropic SDK
requests translated as for OpenAI; cost by the deployment's base model."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.azure_upstream import FakeAzureOpenAI, running_fake_azure
from tests.integration.helpers import (
    FAST_TIMEOUTS,
    anthropic_client,
    running_gateway,
    sync_client,
    user,
)
from tests.support.config import config_doc, key_entry
from tests.support.gateway import GatewayProcess

TOKEN = "tg-azure-tenant-77c0"
API_VERSION = "2024-10-21"
AZURE_KEY = "azure-fake-key-0123456789"
ENTRA_TOKEN = "eyJ.fake-entra-token.sig"
DEPLOYMENTS = [{"model": "gpt-4o-mini", "deployment": "mini-prod"},
               {"model": "text-embedding-3-small", "deployment": "embed-small"}]
# gpt-4o-mini on Azure, priced by base model: 0.15 input, 0.075 cached, 0.60 output per million
# (1234-200)*0.15 + 200*0.075 + 56*0.60 = 155.1 + 15 + 33.6 = 203.7 → 204 µUSD
USAGE = {"prompt_tokens": 1234, "completion_tokens": 56, "cached_tokens": 200}
COST = "0.000204"


def azure_provider(fake: FakeAzureOpenAI, **credential: Any) -> dict[str, Any]:
    return {"name": "azure", "type": "azure-openai", "baseURL": fake.resource_url,
            "apiVersion": API_VERSION, "deployments": DEPLOYMENTS, "timeouts": FAST_TIMEOUTS,
            **credential}


@pytest.fixture(scope="module")
def azure_server() -> Iterator[FakeAzureOpenAI]:
    with running_fake_azure(api_version=API_VERSION, deployments={"mini-prod", "embed-small"},
                            api_key=AZURE_KEY) as fake:
        yield fake


@pytest.fixture
def azure(azure_server: FakeAzureOpenAI) -> Iterator[FakeAzureOpenAI]:
    azure_server.reset()
    yield azure_server
    azure_server.reset()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory,
            azure_server: FakeAzureOpenAI) -> Iterator[GatewayProcess]:
    config = config_doc(providers=[azure_provider(azure_server,
                                                  apiKey={"env": "TEST_AZURE_KEY"})],
                        keys=[key_entry("azure-tenant", TOKEN)])
    with running_gateway(tmp_path_factory.mktemp("azure"), config,
                         {"TEST_AZURE_KEY": AZURE_KEY}) as process:
        yield process


def test_a_chat_completion_reaches_the_deployment_with_the_api_key(gateway: GatewayProcess,
                                                                   azure: FakeAzureOpenAI):
    azure.set_usage(**USAGE)
    with sync_client(gateway, TOKEN) as client:
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini",
                                                               messages=user("hi azure"))
    assert raw.parse().choices[0].message.content == "Echo: hi azure"
    assert raw.headers["x-tollgate-cost-usd"] == COST
    [sent] = azure.requests
    assert sent.path == "/openai/deployments/mini-prod/chat/completions"
    assert sent.headers["api-key"] == AZURE_KEY and "authorization" not in sent.headers
    assert sent.body == {"model": "gpt-4o-mini",
                         "messages": [{"role": "user", "content": "hi azure"}]}


def test_a_stream_is_passed_through_and_metered(gateway: GatewayProcess,
                                                azure: FakeAzureOpenAI):
    azure.set_usage(**USAGE)
    with sync_client(gateway, TOKEN) as client:
        chunks = list(client.chat.completions.create(model="gpt-4o-mini",
                                                     messages=user("stream it"), stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: stream it"
    assert all(c.usage is None for c in chunks), "no usage chunk unless the client asked"
    [sent] = azure.requests
    assert sent.body["stream_options"] == {"include_usage": True}


def test_embeddings_use_the_embedding_deployment(gateway: GatewayProcess,
                                                 azure: FakeAzureOpenAI):
    with sync_client(gateway, TOKEN) as client:
        result = client.embeddings.create(model="text-embedding-3-small", input="abc def")
    assert len(result.data[0].embedding) == 8
    [sent] = azure.requests
    assert sent.path == "/openai/deployments/embed-small/embeddings"


def test_an_anthropic_request_is_translated_for_azure(gateway: GatewayProcess,
                                                      azure: FakeAzureOpenAI):
    with anthropic_client(gateway, TOKEN) as client:
        message = client.messages.create(model="gpt-4o-mini", max_tokens=20,
                                         messages=[{"role": "user", "content": "hallo"}])
    assert message.content[0].type == "text" and message.content[0].text == "Echo: hallo"


def test_an_entra_id_token_is_sent_as_a_bearer(tmp_path_factory: pytest.TempPathFactory):
    with running_fake_azure(api_version=API_VERSION, deployments={"mini-prod"},
                            bearer=ENTRA_TOKEN) as fake:
        directory = tmp_path_factory.mktemp("azure-entra")
        token_file = directory / "entra-token"
        token_file.write_text(ENTRA_TOKEN + "\n")
        config = config_doc(providers=[azure_provider(fake,
                                                      entraToken={"file": str(token_file)})],
                            keys=[key_entry("entra", TOKEN)])
        with running_gateway(directory, config, {}) as process:
            with sync_client(process, TOKEN) as client:
                completion = client.chat.completions.create(model="gpt-4o-mini",
                                                            messages=user("entra"))
        assert completion.choices[0].message.content == "Echo: entra"
        [sent] = fake.requests
        assert sent.headers["authorization"] == f"Bearer {ENTRA_TOKEN}"
