"""Tollgate's benchmark: added latency, throughput, streaming overhead and memory of a gateway
measured against a fast fake OpenAI upstream on loopback. Run it with `make bench` or
`python -m bench.run --help`. It is a measurement, not a test: nothing here asserts on speed.
"""
