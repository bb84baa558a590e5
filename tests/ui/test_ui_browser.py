"""End to end in a real browser: Debian's headless Chromium, driven by Playwright's Python
client (pointed at /usr/bin/chromium; it never downloads a browser), against
``instrumentors ui`` started as a user would start it, on the seed demo's store.

The seed's story by clicking: open the list, apply the seed filter, open a trace, see the
causal graph and the likely cause, submit feedback. The screenshot README shows is taken
here (``INSTRUMENTORS_UPDATE_SCREENSHOT=1`` writes it to docs/ui-trace.png).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the test extra")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from instrumentors.store import TraceStore  # noqa: E402

from .conftest import SEED_FILTER  # noqa: E402

DOCS = Path(__file__).resolve().parents[2] / "docs"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def _chromium() -> str:
    """Debian's chromium (``INSTRUMENTORS_TEST_CHROMIUM`` names another binary)."""
    chosen = os.environ.get("INSTRUMENTORS_TEST_CHROMIUM")
    candidates = [chosen] if chosen else ["/usr/bin/chromium", shutil.which("chromium") or ""]
    for candidate in candidates:
        if candidate and os.path.exists(candidate):
            return candidate
    pytest.skip("Debian's chromium is not installed (apt-get install -y chromium; .ci/run does it) "
                "-- the browser tests need it")


@pytest.fixture
def server(seed_copy):
    """``instrumentors ui --port 0`` in its own process; yields (base url, store path)."""
    _chromium()  # skip before starting anything when there is no browser
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "INSTRUMENTORS_"))}
    proc = subprocess.Popen([sys.executable, "-m", "instrumentors.cli", "ui", "--store", seed_copy, "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert " on http://127.0.0.1:" in line, (line, proc.stderr.read() if proc.poll() is not None else "")
        url = line.split(" on ", 1)[1].split()[0]
        yield url, seed_copy
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def page(server):
    executable = _chromium()
    base, _ = server
    profile = tempfile.mkdtemp(prefix="instrumentors-ui-chromium-")
    with playwright_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(profile, executable_path=executable, headless=True,
                                                       args=CHROMIUM_ARGS, viewport={"width": 1440, "height": 1000})
        pg = context.pages[0] if context.pages else context.new_page()
        pg.set_default_timeout(20_000)
        pg.errors = []
        pg.requests = []
        pg.on("pageerror", lambda exc: pg.errors.append(str(exc)))
        pg.on("console", lambda msg: pg.errors.append(msg.text) if msg.type == "error" else None)
        pg.on("request", lambda request: pg.requests.append(request.url))
        try:
            yield pg
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)


def test_from_the_seed_filter_to_the_cause_and_back_with_feedback(server, page, tmp_path):
    base, store_path = server
    expect = playwright_api.expect
    page.goto(base)
    # 1. the list, and the seed's question one click away
    page.click("#seed-filter")
    expect(page.locator("#summary")).to_contain_text(f"of 20 traces matching {SEED_FILTER}")
    assert page.input_value("#filter") == SEED_FILTER
    rows = page.locator("#traces .trace-row")
    assert rows.count() == 20
    assert page.locator("#traces .trace-row td.low").count() == 20  # every top score below 0.6, in red
    # 2. open one: the waterfall, the causal graph, the explain walk-back and the likely cause
    trace_id = rows.first.get_attribute("data-trace")
    rows.first.locator("a.trace-link").click()
    expect(page.locator("#likely-cause")).to_contain_text("top retrieval score")
    cause_node = page.locator("#causal-graph .node.likely-cause")
    expect(cause_node).to_have_count(1)
    assert "retrieval" in cause_node.text_content()
    assert page.locator("#causal-graph .node-document").count() >= 1
    assert page.locator("#causal-graph .node-answer").count() == 1
    labels = set(page.locator("#causal-graph .edge-label").all_text_contents())
    assert {"informed by", "generated", "step output"} <= labels
    expect(page.locator("#explain")).to_contain_text("stale documents")
    assert page.locator("#waterfall .wf-row").count() == 8
    # attributes on click: a stale document, then a span
    page.locator("#causal-graph .node-document").first.click()
    expect(page.locator("#attributes")).to_contain_text("indexed_at")
    page.locator("#waterfall .wf-row", has_text="chat gpt-4o").last.click()
    expect(page.locator("#attributes")).to_contain_text("gen_ai.request.model")
    page.locator("#causal-graph .node.likely-cause").click()
    shot = tmp_path / "ui-trace.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000
    if os.environ.get("INSTRUMENTORS_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(shot, DOCS / "ui-trace.png")
    # 3. feedback from the page lands in the store
    page.fill("#fb-reason", "still quotes the iPhone-only app")
    page.select_option("#fb-step", index=2)
    chosen = page.eval_on_selector("#fb-step", "el => el.value")
    page.click("#fb-down")
    expect(page.locator("#fb-status")).to_contain_text("recorded user feedback 0")
    expect(page.locator("#feedback-list")).to_contain_text("still quotes the iPhone-only app")
    with TraceStore(store_path) as store:
        stored = store.feedback(trace_id)
    assert stored[0]["reason"] == "still quotes the iPhone-only app" and stored[0]["score"] == 0.0
    assert stored[0]["step_blamed"] == chosen and len(stored) == 2
    # nothing was fetched from anywhere but this server, and no script error happened
    assert all(url.startswith(base) for url in page.requests), [u for u in page.requests if not u.startswith(base)]
    assert page.errors == []


def test_blame_and_prompts_pages_draw_their_bars_and_plots(server, page):
    base, _ = server
    expect = playwright_api.expect
    # paging through the whole list
    page.goto(base + "#/traces?limit=20")
    expect(page.locator("#summary")).to_contain_text("1–20 of 57 traces")
    page.click("#next")
    expect(page.locator("#summary")).to_contain_text("21–40 of 57 traces")
    expect(page.locator("#page")).to_have_text("page 2 of 3")
    page.click("#next")
    expect(page.locator("#summary")).to_contain_text("41–57 of 57 traces")
    assert page.locator("#next").is_disabled()
    # a trace id (prefix) typed into the filter box opens that trace
    wanted = page.locator("#traces .trace-row").first.get_attribute("data-trace")
    page.fill("#filter", wanted[:10])
    page.press("#filter", "Enter")
    expect(page.locator(".trace-head h1")).to_contain_text(wanted)
    page.goto(base + "#/blame")
    expect(page.locator("#blame-summary")).to_contain_text("22 negative and 32 positive")
    first = page.locator("#blame .finding").first
    expect(first).to_contain_text("stale")
    width = first.locator(".bar.neg > span").evaluate("el => el.style.width")
    assert width == "91%"
    first.locator(".examples a").first.click()
    expect(page.locator("#likely-cause")).to_contain_text("Likely cause")
    page.goto(base + "#/prompts")
    expect(page.locator(".prompt-step").first).to_be_visible()
    assert page.locator("svg.dist rect").count() >= 2
    page.goto(base + "#/traces?q=" + "retrieval.top_score%20%3C")
    expect(page.locator("#error")).to_contain_text("missing value")
    page.errors = [e for e in page.errors if "400" not in e]  # the refused filter's response, reported by the browser
    assert page.errors == []


def test_a_slow_answer_for_a_page_left_behind_never_draws_over_the_new_one(server, page):
    """The first list's answer held back 1.5 s while the user clicks the seed filter: the
    filtered list stays (it once got replaced by the late unfiltered one)."""
    base, _ = server
    expect = playwright_api.expect
    page.add_init_script("""
        const realFetch = window.fetch; let held = false;
        window.fetch = (url, options) => {
          const answer = realFetch(url, options);
          if (!held && String(url).startsWith("/api/traces?") && !String(url).includes("q=")) {
            held = true;
            return answer.then((r) => new Promise((resolve) => setTimeout(() => resolve(r), 1500)));
          }
          return answer;
        };""")
    page.goto(base)
    page.click("#seed-filter")
    expect(page.locator("#summary")).to_contain_text("of 20 traces matching")
    page.wait_for_timeout(2500)  # the held answer has arrived by now
    expect(page.locator("#summary")).to_contain_text("of 20 traces matching")
    assert page.locator("#traces .trace-row").count() == 20
    assert page.errors == []
