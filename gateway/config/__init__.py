"""The GatewayConfig contract (models) and how a file becomes a served config (loader)."""
