"""The report page and the demo in a real headless Chromium (Debian's ``chromium``,
driven by Playwright). Skipped, with the reason, where either is missing; ``.ci/run``
installs both."""

from __future__ import annotations

import json
import os
import shutil
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from robustdigits.report.page import find_reports, write_index
from robustdigits.report.tables import fmt
from robustdigits.web.demo import Demo
from robustdigits.web.server import MAX_BODY, make_server

REPORTS = Path(__file__).resolve().parents[1] / "reports"
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="Playwright is not installed (pip install -e '.[browser]')")
    if CHROMIUM is None:
        pytest.skip("no Chromium on PATH (Debian: apt-get install chromium; or set $CHROMIUM)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture()
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()


# --- the report ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def report_copy(tmp_path_factory) -> Path:
    """The committed results, copied, with the page built from them."""
    root = tmp_path_factory.mktemp("site") / "reports"
    shutil.copytree(REPORTS, root, ignore=shutil.ignore_patterns("runs"))
    write_index(root)
    return root


def test_the_report_shows_every_section_every_image_and_the_jsons_numbers(page, report_copy):
    page.goto((report_copy / "index.html").as_uri())
    for section in ("ablation-mnist", "ablation-embedded", "attack", "bench", "robustness", "runs"):
        assert page.locator(f"section#{section} h2").count() == 1, section
    images = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.getAttribute('src'), i.naturalWidth])")
    assert len(images) >= 20 and all(width > 0 for _, width in images), [s for s, w in images if not w]
    # every table names the JSON it shows; each committed report is on the page once, cell for cell
    shown_tables = page.eval_on_selector_all("table[data-source]", """ts => ts.map(t => [t.dataset.source,
        Array.from(t.querySelectorAll('tbody tr')).map(r => Array.from(r.cells).map(c => [c.textContent,
        c.dataset.value]))])""")
    sources = [source for source, _ in shown_tables]
    assert len(sources) == len(set(sources)), sources
    assert set(sources) == {f.path.relative_to(report_copy).as_posix() for f in find_reports(report_copy)}
    for must in ("mnist/ablation.json", "embedded/ablation.json", "mnist/bench.json",
                 "mnist/attack/textbook-momentum/results.json"):
        assert must in sources, must
    if (report_copy / "robustness.json").is_file():
        assert "robustness.json" in sources
    for source, shown in shown_tables:
        expected = json.loads((report_copy / source).read_text())["table"]["rows"]
        assert len(shown) == len(expected), source
        for row_shown, row_json in zip(shown, expected):
            assert [text for text, _ in row_shown] == [fmt(v) for v in row_json], source
            assert [value for _, value in row_shown] == ["" if v is None else str(v) for v in row_json], source


def test_report_tables_sort_by_a_clicked_column(page, report_copy):
    page.goto((report_copy / "index.html").as_uri())
    header = page.locator("#table-ablation-mnist th", has_text="our acc. (%)")
    header.click()
    column = page.eval_on_selector_all("#table-ablation-mnist th", "ths => ths.map(t => t.textContent)").index(
        "our acc. (%)")
    values = page.eval_on_selector_all(f"#table-ablation-mnist tbody td:nth-child({column + 1})",
                                       "tds => tds.map(t => parseFloat(t.dataset.value))")
    assert values == sorted(values)


def test_a_section_without_data_names_its_command(page, tmp_path):
    (tmp_path / "reports").mkdir()
    write_index(tmp_path / "reports")
    page.goto((tmp_path / "reports" / "index.html").as_uri())
    assert "robustdigits robustness --out reports" in page.locator("section#robustness").inner_text()
    assert "robustdigits ablate --data mnist --out reports/mnist" in page.locator("section#ablation-mnist").inner_text()


# --- the demo ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_url(trained) -> Iterator[str]:
    server = make_server(Demo({"textbook-momentum": trained.model.eval()}, torch.device("cpu")), 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()
    server.server_close()


def stroke(page, points: list[tuple[float, float]]) -> None:
    box = page.locator("#draw").bounding_box()
    page.mouse.move(box["x"] + points[0][0], box["y"] + points[0][1])
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(box["x"] + x, box["y"] + y, steps=6)
    page.mouse.up()


def test_draw_a_digit_see_a_prediction_and_watch_the_attack(page, demo_url):
    page.goto(demo_url)
    assert page.locator("#model option").first.text_content() == "textbook-momentum"
    stroke(page, [(140, 40), (140, 240)])  # a 1
    page.wait_for_function("document.getElementById('prediction').textContent !== 'prediction: —'")
    probs = [float(page.locator(f"#prob-{d}").get_attribute("data-value")) for d in range(10)]
    assert abs(sum(probs) - 1) < 0.01
    page.fill("#steps", "300")
    with page.expect_response("**/api/attack") as answer:
        page.click("#attack")
    frames = answer.value.json()["frames"]
    page.wait_for_function("document.getElementById('final-prediction').textContent !== '—'", timeout=30_000)
    assert frames[-1]["target_prob"] > frames[0]["target_prob"]  # the target probability rose
    assert float(page.locator("#target-prob").get_attribute("data-value")) == pytest.approx(frames[-1]["target_prob"])
    assert page.locator("#final-prediction").get_attribute("data-value") == str(frames[-1]["predicted"])
    assert page.locator("#download").get_attribute("href").startswith("data:image/png;base64,")


def test_bad_input_gets_a_message_on_the_page(page, demo_url, tmp_path):
    page.goto(demo_url)
    page.click("#attack")  # nothing drawn
    page.wait_for_function("document.getElementById('message').textContent.includes('empty')")
    assert page.locator("#message").text_content() == "the canvas is empty: draw a digit first"
    text = tmp_path / "notes.txt"
    text.write_text("not a digit")
    page.set_input_files("#file", str(text))
    assert page.locator("#message").text_content() == "notes.txt is not an image: drop a PNG or JPEG of a digit"


def test_the_server_answers_bad_requests_with_a_message_not_an_error(demo_url):
    def post(body: bytes) -> tuple[int, str]:
        request = urllib.request.Request(demo_url + "api/predict", data=body,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request) as r:
                return r.status, json.loads(r.read())["error"]
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())["error"]

    assert post(b"x" * (MAX_BODY + 1)) == (413, "the upload is too large (2.0 MB; at most 2 MB): use a smaller image")
    assert post(b"\x89PNG not json") == (400, "the request is not JSON: send it from the demo page")
    assert post(json.dumps({"image": [0.0] * 784}).encode()) == (400, "the canvas is empty: draw a digit first")
    assert post(json.dumps({"image": [2.0] * 784}).encode())[1] == "the image's grey levels must be numbers in [0, 1]"
    assert post(json.dumps({"image": [0.5] * 100}).encode())[0] == 400


def test_a_model_name_with_html_in_it_is_shown_as_text(page, trained):
    name = '<img src=x onerror="document.title=\'pwned\'">textbook'
    server = make_server(Demo({name: trained.model.eval()}, torch.device("cpu")), 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        page.goto(f"http://127.0.0.1:{server.server_port}/")
        page.wait_for_function("document.querySelectorAll('#model option').length === 1")
        assert page.locator("#model option").first.text_content() == name
        assert page.locator("#model img").count() == 0 and page.title() != "pwned"
    finally:
        server.shutdown()
        server.server_close()
