"""Small helpers that several parts of the package share: devices, random state, safe file writes."""
