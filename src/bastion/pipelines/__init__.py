"""Pipelines on an existing engine (DBOS, Dask for scale-out) whose governance steps
cannot be skipped; every run is evidence."""
