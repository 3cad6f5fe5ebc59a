"""Private batch-system clusters for integration tests (started and stopped by the scripts here)."""
