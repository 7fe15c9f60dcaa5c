"""The playground page at / in a real browser (Debian's chromium via Playwright), against the
server over real HTTP: the ``t2i-server`` CLI on the tiny pipeline for generation, in-process
apps with a gated fake engine for the queue-full and still-loading paths."""

from __future__ import annotations

import io
import re
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path

import pytest
import requests
from browser_testlib import DESKTOP, PHONE, artifacts_dir, chromium_path, serve
from PIL import Image
from playwright.sync_api import expect, sync_playwright
from server_testlib import FakeEngine, wait_for

from inference_server.cli import build, parse_args

UI = Path(__file__).resolve().parents[2] / "inference_server" / "ui"
GENERATION_MS = 180_000  # the tiny pipeline on a busy 2-core CI machine; fails only if never
ALL_IMAGES_LOADED = """sel => [...document.querySelectorAll(sel)]
    .every(img => img.complete && img.naturalWidth > 0)"""


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path())
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    return artifacts_dir(tmp_path_factory.getbasetemp())


@pytest.fixture
def open_page(browser, shots, request):
    """Open a URL in a fresh browser context (a separate user: own storage); every page is
    screenshotted at teardown, and a CSP violation or uncaught script error fails the test."""
    contexts, problems = [], []

    def factory(url: str, viewport: dict = DESKTOP):
        context = browser.new_context(viewport=viewport)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))
        page.on(
            "console",
            lambda message: (
                problems.append(message.text)
                if message.type == "error" and "Content Security Policy" in message.text
                else None
            ),
        )
        return page, page.goto(url)

    yield factory
    for number, context in enumerate(contexts):
        for page in context.pages:
            page.screenshot(path=shots / f"{request.node.name}-{number}.png", full_page=True)
        context.close()
    assert problems == []


def generate(page, prompt: str, number: int | None = None, seed: int | None = None) -> None:
    page.get_by_label("Prompt", exact=True).fill(prompt)
    if number is not None:
        page.get_by_label("Number of images").fill(str(number))
    if seed is not None:
        page.get_by_label("Seed").fill(str(seed))
    page.get_by_role("button", name="Generate").click()


def test_generates_images_on_the_tiny_pipeline_and_keeps_them_in_this_browser_only(
    cli_server, open_page, shots
):
    page, response = open_page(cli_server.base)
    assert response.status == 200
    expect(page.locator("#status-ready")).to_have_text("ready")
    expect(page.locator("#status-model")).to_have_text("stabilityai/sdxl-turbo")
    expect(page.locator("#status-backend")).to_have_text(re.compile(r"^\w+ \(\w+, 2 threads\)$"))
    expect(page.locator("#status-queue")).to_have_text("0 of 64 waiting")
    expect(page.locator("#status-cpu")).not_to_have_text("…")

    generate(page, "a lighthouse at dusk, oil painting", number=2, seed=7)
    done = page.locator("#results li.done")
    expect(done).to_have_count(2, timeout=GENERATION_MS)
    expect(page.locator("#message")).to_contain_text("2 of 2 images done")
    expect(page.locator("#error")).to_be_hidden()
    captions = done.locator("figcaption").all_inner_texts()
    pattern = re.compile(r"\d+\.\d\d s · seed (\d+) · 512x512, 4 steps · download")
    assert sorted(int(pattern.fullmatch(caption)[1]) for caption in captions) == [7, 8], captions
    page.wait_for_function(ALL_IMAGES_LOADED, arg="#results img")
    sources = done.locator("img").evaluate_all("imgs => imgs.map(i => i.getAttribute('src'))")
    assert all(re.fullmatch(r"/images/[0-9a-f-]{36}/0_0\.png", src) for src in sources)
    widths = done.locator("img").evaluate_all("imgs => imgs.map(i => i.naturalWidth)")
    assert widths == [512, 512]
    png = requests.get(cli_server.base + sources[0], timeout=10)
    assert png.headers["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(png.content)).size == (512, 512)
    page.screenshot(path=shots / "playground.png")

    # The gallery survives a reload in this browser...
    expect(page.locator("#gallery li")).to_have_count(2)
    page.reload()
    expect(page.locator("#gallery li")).to_have_count(2)
    page.wait_for_function(ALL_IMAGES_LOADED, arg="#gallery img")
    # ...and another user (another browser context) sees neither the images nor the prompt.
    other, _ = open_page(cli_server.base)
    expect(other.locator("#status-ready")).to_have_text("ready")
    expect(other.locator("#gallery li")).to_have_count(0)
    assert "lighthouse" not in other.content()
    assert "lighthouse" not in requests.get(f"{cli_server.base}/api/status", timeout=10).text


@pytest.mark.parametrize(
    ("prompt", "steps", "message"),
    [
        ("   ", 4, "Error 400: prompt: must not be empty."),
        ("a cat", 99, "Error 400: step: must be between 1 and 50, got 99."),
    ],
)
def test_a_rejected_request_shows_the_servers_message_naming_the_field(
    cli_server, open_page, prompt, steps, message
):
    page, _ = open_page(cli_server.base)
    page.get_by_label("Steps").fill(str(steps))
    generate(page, prompt)
    expect(page.get_by_role("alert")).to_have_text(message)
    expect(page.locator("#results li")).to_have_count(0)
    expect(page.get_by_role("button", name="Generate")).to_be_enabled()


def test_queue_full_shows_429_with_retry_after_and_the_queue_depth(app_factory, open_page):
    engine = FakeEngine(block=True)
    app = app_factory(engine, max_queue=1, max_batch=1)
    runtime = app.extensions["t2i"]
    with serve(app) as base, ThreadPoolExecutor(2) as pool:
        body = {"prompt": "filler", "number": 1}
        running = pool.submit(requests.post, f"{base}/api/text2image", json=body, timeout=60)
        assert engine.entered.wait(30), "the worker never took the first request"
        waiting = pool.submit(requests.post, f"{base}/api/text2image", json=body, timeout=60)
        wait_for(lambda: runtime.batcher.depth == 1, what="one image waiting")
        try:
            page, _ = open_page(base)
            expect(page.locator("#status-queue")).to_have_text("1 of 1 waiting")
            generate(page, "one more")
            expect(page.get_by_role("alert")).to_have_text(
                "Error 429: queue full (1 images waiting, limit 1); retry later. Retry after 5 s."
            )
            expect(page.locator("#results li")).to_have_count(0)
        finally:
            engine.gate.set()
        assert running.result().status_code == waiting.result().status_code == 200


def test_while_the_model_loads_503_with_retry_after_then_it_works(app_factory, open_page):
    engine = FakeEngine(loaded=False)
    app = app_factory(engine, background=True)
    with serve(app) as base:
        page, _ = open_page(base)
        expect(page.locator("#status-ready")).to_have_text("loading the model")
        generate(page, "too early")
        expect(page.get_by_role("alert")).to_have_text(
            "Error 503: model is loading; retry later. Retry after 10 s."
        )
        engine.loaded_event.set()
        wait_for(app.extensions["t2i"].is_ready, what="fake engine ready")
        page.get_by_role("button", name="Generate").click()
        expect(page.locator("#results li.done")).to_have_count(1)
        expect(page.get_by_role("alert")).to_be_hidden()
        expect(page.locator("#status-ready")).to_have_text("ready")


def test_ui_off_is_404_at_the_page_and_its_assets_but_the_api_stays(app_factory, open_page):
    app = app_factory(FakeEngine(), ui=False)
    with serve(app) as base:
        page, response = open_page(base)
        assert response.status == 404
        assert page.locator("#generate-form").count() == 0
        assert requests.get(f"{base}/ui/app.js", timeout=10).status_code == 404
        assert requests.get(f"{base}/api/status", timeout=10).status_code == 200
        body = {"prompt": "api only"}
        assert requests.post(f"{base}/api/text2image", json=body, timeout=30).status_code == 200


@pytest.mark.parametrize(("argv", "env", "status"), [([], {}, 200), (["--ui", "false"], {}, 404),
                                                      ([], {"T2I_UI": "0"}, 404)])  # fmt: skip
def test_the_ui_flag_reaches_the_app(tiny_model_dir, tmp_path, monkeypatch, argv, env, status):
    monkeypatch.delenv("T2I_UI", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    args = parse_args(["--model-dir", str(tiny_model_dir), "--output-dir", str(tmp_path), *argv])
    assert build(args).test_client().get("/").status_code == status


def test_keyboard_only_and_every_control_labelled(app_factory, open_page):
    with serve(app_factory(FakeEngine())) as base:
        page, _ = open_page(base)
        unlabelled = page.evaluate(
            """() => [...document.querySelectorAll('input, select, textarea, button')]
                .filter(e => !(e.labels && e.labels.length) && !e.textContent.trim())
                .map(e => e.id)"""
        )
        assert unlabelled == []
        page.get_by_label("Prompt", exact=True).focus()
        page.keyboard.type("typed, never clicked")
        page.keyboard.press("Control+Enter")
        expect(page.locator("#results li.done")).to_have_count(1)
        page.get_by_label("Seed").focus()
        page.keyboard.type("3")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "generate"
        page.keyboard.press("Enter")
        expect(page.locator("#results figcaption")).to_contain_text("seed 3 ·")
        expect(page.locator("#gallery li")).to_have_count(2)


def test_phone_width_has_no_horizontal_scroll(app_factory, open_page):
    with serve(app_factory(FakeEngine())) as base:
        page, _ = open_page(base, viewport=PHONE)
        generate(page, "small screen")
        image = page.locator("#results li.done img")
        expect(image).to_have_count(1)
        page.wait_for_function(ALL_IMAGES_LOADED, arg="#results img")
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        for control in ("Size", "Steps", "Number of images", "Seed"):
            box = page.get_by_label(control).bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], control
        box = image.bounding_box()
        assert box and 300 <= box["width"] <= PHONE["width"]


class _Inline(HTMLParser):
    """Collects what a strict CSP would block or what would load from elsewhere."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if tag == "style" or (tag == "script" and not names.get("src")):
            self.problems.append(f"inline <{tag}>")
        for name, value in attrs:
            if name == "style" or name.startswith("on"):
                self.problems.append(f"{tag} {name}=")
            if name in ("src", "href") and value and not value.startswith("/"):
                self.problems.append(f"{tag} {name}={value}")


def test_page_is_self_contained_and_served_with_a_strict_csp(cli_server):
    parser = _Inline()
    parser.feed((UI / "index.html").read_text())
    assert parser.problems == []
    assert "http" not in (UI / "app.js").read_text().replace("https://", "").replace("http://", "")
    for path in ("/", "/ui/app.js", "/ui/style.css"):
        response = requests.get(cli_server.base + path, timeout=10)
        assert response.status_code == 200
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "default-src 'none'" in csp
        assert "unsafe-inline" not in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    for path in ("/ui/../app.py", "/ui/%2e%2e%2fapp.py", "/ui/__init__.py", "/ui/index.htm"):
        assert requests.get(cli_server.base + path, timeout=10).status_code == 404, path


def test_status_endpoint_names_the_machine_and_nothing_private(cli_server, tiny_model_dir):
    status = requests.get(f"{cli_server.base}/api/status", timeout=10).json()
    assert status["model"] == "stabilityai/sdxl-turbo" and status["ready"] is True
    assert status["backend"] in ("eager", "packed", "compile", "ipex", "int8")
    assert status["dtype"] in ("bfloat16", "float32") and status["threads"] == 2
    assert set(status["cpu"]) == {"model", "isa"} and status["cpu"]["model"]
    assert status["queue"]["depth"] == 0 and status["queue"]["max"] == 64
    assert status["limits"]["sizes"] == ["512x512", "1024x1024"]
    text = str(status)
    assert str(tiny_model_dir) not in text and str(cli_server.output_dir) not in text
