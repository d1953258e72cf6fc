"""Test support: start real processes on loopback and build configs."""
