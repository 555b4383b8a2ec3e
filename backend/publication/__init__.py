"""The publication gate (Art. 18) and the published untrustworthy list (Art. 19)."""
