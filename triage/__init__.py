"""Domain core: vocabularies, schema, settings, store, synthetic world and the CLI."""
