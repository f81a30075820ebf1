"""Execute every lesson headless and write it to build/html (`make course`)."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbconvert import HTMLExporter

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    out_dir = ROOT / "build" / "html"
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        NotebookClient(nb, timeout=1800, resources={"metadata": {"path": str(path.parent)}}).execute()
        html, _ = HTMLExporter().from_notebook_node(nb)
        target = out_dir / (path.stem + ".html")
        target.write_text(html)
        print(f"{path.name}: {time.perf_counter() - start:.1f} s -> {target.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
