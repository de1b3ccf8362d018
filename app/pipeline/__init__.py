"""Where ``ml/`` meets the store: ingest, train, infer, project, analyze, flags.

One module per unit of work. ``ml/`` takes arrays and paths and returns arrays; these modules
read the store, call ``ml/``, and write the results back in one transaction per unit of work.
"""
