"""The `salon` command: the one place that wires every layer (indexer, search, training, web)."""
