"""Data sharing with partner departments (Art. 21): scoped API keys, an incremental change feed, a read log."""
