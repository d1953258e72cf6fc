"""Tollgate's kopf operator (imported as tollgate.operator; never as top-level `operator`)."""
