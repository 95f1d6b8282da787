"""Helpers shared by tests/ and bench/ (generated GGUF models); not used by the product at run time."""
