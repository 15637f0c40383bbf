"""The wheel ships the code and the console's files only: never the test photos of ../shared/faces, never data."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import REPO


def test_wheel_holds_only_the_package_code(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "-q", "-w", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("facefuse-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n == "facefuse/wire/app.py" for n in names)
    console = sorted(p.name for p in (REPO / "src" / "facefuse" / "wire" / "console").iterdir())
    assert sorted(n.rsplit("/", 1)[1] for n in names if n.startswith("facefuse/wire/console/")) == console
    strays = [
        n
        for n in names
        if not (n.startswith("facefuse/") and n.endswith((".py", "py.typed")))
        and not (n.startswith("facefuse/wire/console/") and n.endswith((".html", ".css", ".js")))
        and ".dist-info/" not in n
    ]
    # The visible AI label's font, its licence and how it was made (media/fonts/README.md)
    assert sorted(strays) == [
        "facefuse/media/fonts/FacefuseLabelSans-Bold.otf",
        "facefuse/media/fonts/OFL.txt",
        "facefuse/media/fonts/README.md",
    ]
    assert not any(n.lower().endswith((".jpg", ".jpeg", ".png", ".tsv", ".db")) for n in names)
