"""Long-context tiers: a request whose input passes the threshold is priced wholly at the tier."""

from __future__ import annotations

from tollgate.gateway.pricing import Usage, load_catalog


def test_gemini_pro_switches_tier_above_200k_input_tokens():
    price = load_catalog()[("vertex", "gemini-2.5-pro")]
    at_threshold = Usage(input_tokens=200_000, output_tokens=1000)
    above = Usage(input_tokens=200_001, output_tokens=1000)
    # 200000*1.25 + 1000*10 = 260000 µUSD; 200001*2.5 + 1000*15 = 515002.5 → 515003 µUSD
    assert price.cost(at_threshold) == 260_000
    assert price.cost(above) == 515_003
    assert price.for_usage(above) is price.long_context


def test_cached_tokens_count_towards_the_threshold_and_get_the_tier_cache_price():
    price = load_catalog()[("vertex", "gemini-2.5-pro")]
    usage = Usage(input_tokens=250_000, output_tokens=0, cached_input_tokens=100_000)
    # 150000*2.5 + 100000*0.25 = 400000 µUSD
    assert price.cost(usage) == 400_000


def test_every_new_catalog_entry_names_a_source_and_a_date():
    import json
    from importlib import resources

    raw = json.loads(resources.files("tollgate.gateway").joinpath("data/prices.json")
                     .read_text("utf-8"))
    providers = {"bedrock", "vertex", "azure-openai"}
    entries = [e for e in raw["prices"] if e["provider"] in providers]
    assert {e["provider"] for e in entries} == providers
    assert all(e["source"] and e["checked"] for e in entries)
    catalog = load_catalog()
    regional = catalog[("bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0")]
    global_ = catalog[("bedrock", "global.anthropic.claude-sonnet-4-5-20250929-v1:0")]
    assert regional.input * 10 == global_.input * 11  # the 10% regional premium
