"""The SQL store: models, engine and session factory, reads for pages, bulk writes."""
