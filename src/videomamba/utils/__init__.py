"""Small helpers every layer may use (atomic file writes)."""
