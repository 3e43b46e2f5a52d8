"""Documents for retrieval: ingestion, chunking, the index, hybrid retrieval."""
