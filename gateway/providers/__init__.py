"""Provider adapters behind one interface (base.Provider); registry.build() picks by type."""
