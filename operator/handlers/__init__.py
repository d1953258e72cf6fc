"""kopf handlers: importing a module registers its handlers with kopf's default registry."""
