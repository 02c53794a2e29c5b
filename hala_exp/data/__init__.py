"""Data formats and their single owners: the messages schema (messages), JSONL with a bounded quarantine
(jsonl), Arrow files (arrow), source adapters (sources), seeded mixes on Arrow (mixes), line-aligned
parallel text (parallel), and the one path resolver (paths)."""
