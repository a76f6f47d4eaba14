"""Examples a downstream consumer can copy (each folder has its own README)."""
