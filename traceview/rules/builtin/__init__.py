"""Built-in rules, one module per rule (or per small family); imported by the registry."""
