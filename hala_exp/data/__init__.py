"""Data formats and their readers: JSONL with quarantine, source adapters and seeded mixes, path resolution."""
