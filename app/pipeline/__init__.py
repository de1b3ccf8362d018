"""Where ``ml/`` meets the store: ingest, train, import, infer, project, analyze, flags, compare.

One module per unit of work. ``ml/`` takes arrays and paths and returns arrays; these modules
read the store through ``app.store``, call ``ml/``, and write the results back in one transaction
per unit of work. Every entry point takes a ``Store`` (``app.store.db``) and an optional
``Progress`` (``app.pipeline.common``); see docs/architecture.md.
"""
