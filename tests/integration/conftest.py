"""Fixtures for the gateway's integration tests: fake upstreams on 127.0.0.1.

Two independent fake OpenAI servers and one fake Anthropic server run for the whole session (so
failover can cross hosts and API shapes); the function-scoped fixtures hand a test a fake with
no recorded requests, no faults and default usage, and reset it again afterwards so a
module-scoped gateway can be shared safely.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.anthropic_upstream import FakeAnthropic, running_fake_anthropic
from tests.fakes.openai_upstream import FakeOpenAI, running_fake_openai


@pytest.fixture(scope="session")
def openai_upstream_server() -> Iterator[FakeOpenAI]:
    with running_fake_openai() as fake:
        yield fake


@pytest.fixture(scope="session")
def backup_upstream_server() -> Iterator[FakeOpenAI]:
    with running_fake_openai() as fake:
        yield fake


@pytest.fixture
def openai_upstream(openai_upstream_server: FakeOpenAI) -> Iterator[FakeOpenAI]:
    openai_upstream_server.reset()
    yield openai_upstream_server
    openai_upstream_server.reset()


@pytest.fixture
def backup_upstream(backup_upstream_server: FakeOpenAI) -> Iterator[FakeOpenAI]:
    backup_upstream_server.reset()
    yield backup_upstream_server
    backup_upstream_server.reset()


@pytest.fixture(scope="session")
def anthropic_upstream_server() -> Iterator[FakeAnthropic]:
    with running_fake_anthropic() as fake:
        yield fake


@pytest.fixture
def anthropic_upstream(anthropic_upstream_server: FakeAnthropic) -> Iterator[FakeAnthropic]:
    anthropic_upstream_server.reset()
    yield anthropic_upstream_server
    anthropic_upstream_server.reset()
