"""Versioned prompt registry with labels and change events."""
