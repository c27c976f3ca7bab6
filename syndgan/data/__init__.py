"""Datasets described in code: readers return records, ingest turns them into tables."""
