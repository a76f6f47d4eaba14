"""Face-detector backends, one module each with its own config model."""
