"""../shared is where the tests find real data (failing under CI when it is missing)."""

from __future__ import annotations

from pathlib import Path


def test_shared_dir_holds_the_real_data(shared_dir: Path) -> None:
    assert (shared_dir / "README.md").is_file()
    crowd = shared_dir / "data" / "crowd"
    assert any(crowd.rglob("*.jp*g")), f"no crowd photos under {crowd}"
