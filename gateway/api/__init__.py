"""HTTP surface: OpenAI-compatible routes, ops routes, and pure-ASGI middleware."""
