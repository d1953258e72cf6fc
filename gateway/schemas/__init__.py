"""Inbound wire shapes, checked just enough to route and bill (the provider validates the rest)."""
