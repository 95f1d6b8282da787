"""The library screen's parts: its data (state.py, no widgets) and its cards (cards.py)."""
