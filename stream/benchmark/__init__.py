"""Whole-pipeline benchmarks (`streamrec bench pipeline`): real broker, real Redis, real workers."""
