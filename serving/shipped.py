"""Where the classifier weights that ship with the repository live.

Its own module so the command line can name the default without importing Keras.
"""

from __future__ import annotations

from pathlib import Path

SHIPPED_WEIGHTS = Path(__file__).resolve().parent / "models" / "mask_classifier"
"""The trained classifier that ships with the package (compact float16 shards)."""
