"""Helpers for the observability integration tests: scrape /metrics into exact samples, read
decision-log lines, and validate them against docs/decision-log.schema.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import jsonschema
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.helpers import log_events
from tests.support.gateway import GatewayProcess

__all__ = ["Scrape", "decisions", "schema_validator", "scrape"]

SCHEMA = Path(__file__).resolve().parents[3] / "docs" / "decision-log.schema.json"


class Scrape:
    """One /metrics answer, parsed with prometheus_client's own parser."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                self.samples[(sample.name, frozenset(sample.labels.items()))] = sample.value

    def value(self, name: str, **labels: str) -> float:
        """The sample with exactly these labels (0 when absent)."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def series(self, name: str) -> list[dict[str, str]]:
        return [dict(labels) for (sample, labels) in self.samples if sample == name]


def scrape(gateway: GatewayProcess) -> Scrape:
    response = httpx.get(gateway.url + "/metrics", timeout=10)
    assert response.status_code == 200
    return Scrape(response.text)


def schema_validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))


def decisions(gateway: GatewayProcess) -> list[dict[str, Any]]:
    return [e for e in log_events(gateway) if e.get("event") == "request"]
