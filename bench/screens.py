"""Screenshots of the website for the README: the home, an episode and a results page, at
1280 and 390 pixels wide, as headless Chromium (Debian's) shows them.

Publishes a copy of the bundled archive (`podarchive run`: the model transcribes it),
serves it with `podarchive serve` and writes docs/screens/<page>-<width>.png.

    .venv/bin/python bench/screens.py
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SCREENS = REPO / "docs" / "screens"
WIDTHS = {1280: 800, 390: 844}
PAGES = {"home": "", "episode": "episodes/eric-joanis-readalongs/",
         "search": "search?q=traduction+automatique"}


def _bench_serve():
    spec = importlib.util.spec_from_file_location("bench_serve", HERE / "serve.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def published_copy(folder: Path) -> Path:
    root = folder / "archive"
    root.mkdir()
    shutil.copy(REPO / "archive.toml", root)
    shutil.copy(REPO / "cover.png", root)
    shutil.copytree(REPO / "episodes", root / "episodes", ignore=shutil.ignore_patterns("transcript.json"))
    subprocess.run([sys.executable, "-m", "pipeline", "--archive", str(root), "run"], cwd=REPO, check=True)
    return root


def main() -> None:
    bench_serve = _bench_serve()
    SCREENS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="screens-") as scratch:
        root = published_copy(Path(scratch))
        port = bench_serve.free_port()
        server = bench_serve.start_server(root, port)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=shutil.which("chromium"))
                for width, height in WIDTHS.items():
                    page = browser.new_page(viewport={"width": width, "height": height})
                    for name, path in PAGES.items():
                        page.goto(f"http://127.0.0.1:{port}/{path}")
                        page.wait_for_load_state("networkidle")
                        target = SCREENS / f"{name}-{width}.png"
                        page.screenshot(path=target)
                        print(f"wrote {target.relative_to(REPO)}")
                    page.close()
                browser.close()
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
