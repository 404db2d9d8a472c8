"""Screenshots of the report page and of the demo for the README (docs/img/*.png), taken
in headless Chromium (Debian's, through Playwright: pip install -e '.[browser]').

    python scripts/screenshots.py            # after 'robustdigits report'; the demo needs a trained variant
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import torch
from playwright.sync_api import sync_playwright

from robustdigits import load_variant
from robustdigits.web.demo import Demo
from robustdigits.web.server import make_server

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "img"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    model = load_variant("textbook-momentum", "mnist")
    server = make_server(Demo({"textbook-momentum": model}, torch.device("cpu")), 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto((ROOT / "reports" / "index.html").as_uri())
        page.screenshot(path=OUT / "report.png")
        page.goto(f"http://127.0.0.1:{server.server_port}/")
        box = page.locator("#draw").bounding_box()
        # a 3: two arcs
        points = [(90, 60), (150, 40), (200, 80), (160, 135), (120, 140), (165, 145), (205, 195), (150, 240),
                  (85, 220)]
        page.mouse.move(box["x"] + points[0][0], box["y"] + points[0][1])
        page.mouse.down()
        for x, y in points[1:]:
            page.mouse.move(box["x"] + x, box["y"] + y, steps=8)
        page.mouse.up()
        page.wait_for_function("document.getElementById('prediction').textContent !== 'prediction: —'")
        page.click("#attack")
        page.wait_for_function("document.getElementById('final-prediction').textContent !== '—'", timeout=60_000)
        page.screenshot(path=OUT / "demo.png")
        browser.close()
    server.shutdown()
    print(f"wrote {OUT / 'report.png'} and {OUT / 'demo.png'}")


if __name__ == "__main__":
    main()
