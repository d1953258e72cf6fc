"""Translation between the inbound API shape and a provider's wire shape (see base.py);
registry.py picks the pair, sse.py is the byte-level codec, shapes/ the per-shape vocabulary."""
