"""Intake from verification institutions (Art. 15) and industry associations (Art. 16): single and CSV jobs."""
