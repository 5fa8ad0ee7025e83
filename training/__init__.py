"""Training the reader: a layer above search/ (it imports search and indexer; serving never imports it)."""
