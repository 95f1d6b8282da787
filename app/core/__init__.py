"""Corral without a face: everything here works, and is tested, with no Qt imported."""
