"""``provenance hash``: JSON lines, one error line per unreadable file, non-zero exit at the end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent / "provenance"


def test_hash_jsonl_with_an_unreadable_file(tmp_path: Path, shared_photos: Path) -> None:
    good = shared_photos / "skimage" / "coffee.png"
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really")
    listing = tmp_path / "list.txt"
    listing.write_text(f"{broken}\n")
    rel = os.path.relpath(good, tmp_path)
    out = subprocess.run([str(BIN), "hash", "--jsonl", rel, "--files-from", str(listing)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 1
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert lines[0]["path"] == rel  # echoed exactly as given
    assert len(lines[0]["hash"]) == 16 and lines[0]["model"].startswith("oscar-v1-")
    assert lines[1]["path"] == str(broken) and "error" in lines[1]


def test_hash_a_directory(tmp_path: Path, shared_photos: Path) -> None:
    import shutil

    folder = tmp_path / "imgs"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(shared_photos / "skimage" / "coffee.png", folder / "b.png")
    shutil.copy(shared_photos / "skimage" / "chelsea.png", folder / "sub" / "a.png")
    (folder / "notes.txt").write_text("not an image suffix: skipped")
    out = subprocess.run([str(BIN), "hash", str(folder)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    rows = [line.split("  ", 1) for line in out.stdout.splitlines()]
    assert [r[1] for r in rows] == [str(folder / "b.png"), str(folder / "sub" / "a.png")]
    assert all(len(r[0]) == 16 for r in rows)


def test_hash_needs_input() -> None:
    out = subprocess.run([str(BIN), "hash"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "give image paths" in out.stderr
