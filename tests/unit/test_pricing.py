"""Pricing: every token priced once in one class, the packaged catalog, config overrides."""

from __future__ import annotations

import json
from datetime import date
from importlib import resources

import pytest

from tollgate.gateway.config.models import GatewayConfig
from tollgate.gateway.pricing import Price, PriceBook, Usage, load_catalog
from tollgate.gateway.runtime import build_snapshot
from tollgate.gateway.store.embedded import EmbeddedStore
from tollgate.gateway.store.outbox import Outbox
from tollgate.gateway.transport import AiohttpTransport

GPT_4O = Price.from_strings("2.50", "10.00", "1.25")  # USD per million: input, output, cached


def rates(price: Price | None) -> tuple[int, int, int] | None:
    """(input, cached input, output) in pico-dollars per token: the fields that make a cost."""
    return None if price is None else (price.input, price.cached_input, price.output)


def _raw_catalog() -> dict:
    text = resources.files("tollgate.gateway").joinpath("data/prices.json").read_text("utf-8")
    return json.loads(text)


def test_prices_are_integer_pico_dollars_per_token():
    assert rates(GPT_4O) == (2_500_000, 1_250_000, 10_000_000)


def test_a_model_without_a_cached_price_charges_cached_tokens_at_the_input_price():
    assert Price.from_strings("3.00", "15.00", None).cached_input == 3_000_000


def test_cached_input_tokens_are_priced_at_the_cached_rate_and_not_again_as_input():
    usage = Usage(input_tokens=1_000, cached_input_tokens=400, output_tokens=100)
    # 600 × 2.5 µ$ + 400 × 1.25 µ$ + 100 × 10 µ$
    assert GPT_4O.cost(usage) == 1_500 + 500 + 1_000


def test_caching_saves_exactly_the_rate_difference_on_the_cached_tokens():
    cold = GPT_4O.cost(Usage(input_tokens=1_000, output_tokens=100))
    warm = GPT_4O.cost(Usage(input_tokens=1_000, cached_input_tokens=400, output_tokens=100))
    assert cold - warm == 400 * (2_500_000 - 1_250_000) // 1_000_000


def test_more_cached_tokens_than_input_tokens_never_bills_more_than_the_input():
    usage = Usage(input_tokens=100, cached_input_tokens=500)
    assert GPT_4O.cost(usage) == GPT_4O.cost(Usage(input_tokens=100, cached_input_tokens=100))
    assert GPT_4O.cost(usage) == 125


def test_reasoning_tokens_are_part_of_the_output_and_not_billed_twice():
    with_reasoning = Usage(input_tokens=10, output_tokens=100, reasoning_tokens=60)
    assert GPT_4O.cost(with_reasoning) == GPT_4O.cost(Usage(input_tokens=10, output_tokens=100))
    assert GPT_4O.cost(with_reasoning) == 25 + 1_000


def test_a_cost_is_rounded_once_for_the_whole_request_not_per_token_class():
    half = Price.from_strings("0.50", "0.50", None)  # half a micro-dollar per token
    # 3 × 0.5 + 3 × 0.5 = 3.0 µ$; rounding each class first would give 2 + 2 = 4.
    assert half.cost(Usage(input_tokens=3, output_tokens=3)) == 3


def test_a_cost_landing_on_half_a_micro_dollar_rounds_up():
    half = Price.from_strings("0.50", "0.50", None)
    assert half.cost(Usage(input_tokens=1)) == 1
    assert half.cost(Usage(input_tokens=5)) == 3


def test_a_cost_below_half_a_micro_dollar_rounds_down_to_zero():
    assert Price.from_strings("0.40", "0", None).cost(Usage(input_tokens=1)) == 0


def test_total_tokens_counts_cached_and_reasoning_tokens_once():
    usage = Usage(input_tokens=1_000, cached_input_tokens=400, output_tokens=100,
                  reasoning_tokens=60)
    assert usage.total_tokens == 1_100


def test_the_packaged_catalog_loads_without_the_network():
    catalog = load_catalog()
    assert rates(catalog[("openai", "gpt-4o")]) == rates(GPT_4O)
    assert rates(catalog[("openai", "gpt-4o-mini")]) == (150_000, 75_000, 600_000)
    assert ("mock", "mock-chat") in catalog


def test_every_catalog_entry_names_its_source_and_the_date_it_was_checked():
    entries = _raw_catalog()["prices"]
    assert entries
    for entry in entries:
        where = f"{entry['provider']}/{entry['model']}"
        assert entry.get("source", "").strip(), f"{where} has no source"
        assert date.fromisoformat(entry["checked"]) <= date.today(), f"{where}: checked later"


def test_every_catalog_entry_is_listed_once_and_has_a_valid_price():
    entries = _raw_catalog()["prices"]
    names = [(e["provider"], e["model"]) for e in entries]
    assert len(names) == len(set(names))
    assert len(load_catalog()) == len(entries)


def _book(**overrides: Price) -> PriceBook:
    return PriceBook(
        load_catalog(),
        provider_types={"primary": "openai", "secondary": "openai", "demo": "mock"},
        overrides={("primary", model): price for model, price in overrides.items()},
    )


def test_a_provider_is_priced_from_the_catalog_of_its_type():
    book = _book()
    assert rates(book.price("primary", "gpt-4o")) == rates(GPT_4O)
    assert rates(book.price("demo", "mock-chat")) == (1_000_000, 500_000, 2_000_000)


def test_an_override_wins_over_the_catalog_for_that_provider_only():
    negotiated = Price.from_strings("2.00", "8.00", "1.00")
    book = _book(**{"gpt-4o": negotiated})
    assert book.price("primary", "gpt-4o") == negotiated
    assert rates(book.price("secondary", "gpt-4o")) == rates(GPT_4O)


def test_an_override_can_price_a_model_the_catalog_does_not_know():
    private = Price.from_strings("0.20", "0.60", None)
    assert _book(**{"ft:gpt-4o:acme": private}).price("primary", "ft:gpt-4o:acme") == private


@pytest.mark.parametrize(("provider", "model"), [
    ("primary", "no-such-model"),
    ("unconfigured", "gpt-4o"),
    ("demo", "gpt-4o"),
])
def test_an_unknown_model_has_no_price_rather_than_a_zero_price(provider: str, model: str):
    assert _book().price(provider, model) is None


def test_the_catalog_lists_the_models_of_one_provider_type():
    models = _book().catalog_models("mock")
    assert sorted(models) == ["mock-chat", "mock-embed"]


def test_pricing_overrides_in_the_config_reach_the_served_price_book(tmp_path):
    config = GatewayConfig.model_validate({
        "apiVersion": "tollgate.dev/v1alpha1",
        "kind": "GatewayConfig",
        "providers": [{"name": "azure-eu", "type": "openai", "baseURL": "http://127.0.0.1:9/v1"}],
        "pricing": [{"provider": "azure-eu", "model": "gpt-4o", "inputPerMillionUSD": "2.75",
                     "outputPerMillionUSD": "11.00"}],
    })
    snapshot = build_snapshot(
        config, "r1", AiohttpTransport(), load_catalog(),
        lambda settings: (EmbeddedStore(str(tmp_path / "state.db")), Outbox()),
    )
    assert rates(snapshot.prices.price("azure-eu", "gpt-4o")) == (2_750_000, 2_750_000, 11_000_000)
    assert rates(snapshot.prices.price("azure-eu", "gpt-4o-mini")) == (150_000, 75_000, 600_000)


SONNET = Price.from_strings("3.00", "15.00", "0.30", cache_write="3.75", cache_write_1h="6.00")


def test_cache_writes_are_priced_at_the_write_rate_and_not_again_as_input():
    # 100 plain, 2000 read, 500 written (5 min), 50 out:
    # 100*3 + 2000*0.30 + 500*3.75 + 50*15 = 300 + 600 + 1875 + 750 = 3525 micro-USD
    usage = Usage(input_tokens=2600, cached_input_tokens=2000, cache_write_tokens=500,
                  output_tokens=50)
    assert SONNET.cost(usage) == 3525


def test_one_hour_writes_are_priced_at_their_own_rate():
    # 400 five-minute writes at 3.75 + 100 one-hour writes at 6.00 = 1500 + 600
    usage = Usage(input_tokens=500, cache_write_tokens=500, cache_write_1h_tokens=100)
    assert SONNET.cost(usage) == 2100


def test_without_a_write_price_writes_cost_the_catalogs_multiples_of_input():
    price = Price.from_strings("3.00", "15.00", None)
    assert (price.cache_write, price.cache_write_1h) == (3_750_000, 6_000_000)
    raw = _raw_catalog()["cacheWriteMultipliers"]
    assert (raw["5m"], raw["1h"]) == ("1.25", "2")


def test_cache_classes_never_exceed_the_input_they_are_part_of():
    absurd = Usage(input_tokens=100, cached_input_tokens=80, cache_write_tokens=500)
    assert SONNET.cost(absurd) == SONNET.cost(
        Usage(input_tokens=100, cached_input_tokens=80, cache_write_tokens=20))


@pytest.mark.parametrize("model", ["claude-opus-4-6", "claude-sonnet-4-6", "claude-sonnet-4-5",
                                   "claude-haiku-4-5"])
def test_claude_on_anthropic_prices_reads_at_a_tenth_and_writes_at_a_quarter_more(model: str):
    price = load_catalog()[("anthropic", model)]
    assert price.cached_input * 10 == price.input
    assert price.cache_write * 4 == price.input * 5
    assert price.cache_write_1h == price.input * 2
    assert price.max_output_tokens
