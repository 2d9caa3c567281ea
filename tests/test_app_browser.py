"""The Space in a real browser: ``python demo/app.py`` in a subprocess, driven by Playwright.

The app searches the embedded set (synthetic-mini here to keep CI quick; synthetic-v1 when
it is already built in the test cache) with real retrievers, and its leaderboard and
benchmark browser read a results folder that a bm25-text run writes first. Screenshots go
to tests/artifacts/ (not committed).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# Generous: when synthetic-v1 is built but not yet indexed, the first run extracts its
# speech and on-screen text (minutes on a small CPU); later runs hit the feature store.
pytestmark = [pytest.mark.browser, pytest.mark.timeout(2400)]

sync_api = pytest.importorskip("playwright.sync_api")

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM = Path(os.environ.get("SCENEBENCH_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
# Offline methods that share the text extracted for bm25-text, plus one that is always
# unavailable here (no endpoint configured), so the compare tab shows a reason.
METHODS = "bm25-text,dense-text-minilm,llm-endpoint"
START_TIMEOUT_S = 180
SEARCH_TIMEOUT_MS = 600_000  # the first search may index the embedded set
UI_TIMEOUT_MS = 120_000

if not CHROMIUM.is_file():
    pytest.skip(f"no Chromium at {CHROMIUM} (set SCENEBENCH_CHROMIUM)", allow_module_level=True)
sync_api.expect.set_options(timeout=UI_TIMEOUT_MS)


def embedded_dataset() -> str:
    """``$SCENEBENCH_TEST_DEMO_DATASET``, else synthetic-v1 when the test cache already holds
    it, else synthetic-mini (seconds to build and index: what CI gets)."""
    from bench.paths import cache_home

    chosen = os.environ.get("SCENEBENCH_TEST_DEMO_DATASET")
    if chosen:
        return chosen
    built = cache_home() / "datasets" / "synthetic-v1" / "queries.jsonl"
    return "synthetic-v1" if built.is_file() else "synthetic-mini"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0


def mmss(seconds: float) -> str:
    total = max(0, int(round(seconds)))
    return f"{total // 60:02d}:{total % 60:02d}"


@dataclass(frozen=True)
class Target:
    """A benchmark query that bm25-text answers well, with its expected top window."""

    qid: str
    query: str
    vid: str
    truth: tuple[float, float]
    top: tuple[float, float]

    @property
    def label(self) -> str:
        return f"{self.qid} · {' '.join(self.query.split())[:90]}"


@pytest.fixture(scope="module")
def dataset() -> str:
    return embedded_dataset()


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory: pytest.TempPathFactory, dataset: str) -> Path:
    """bm25-text results on the embedded set (this also indexes it into the test cache)."""
    from bench.eval.runner import run

    out = tmp_path_factory.mktemp("results")
    results = run([dataset], ["bm25-text"], out=out, modes=("grounding",), progress=False)
    assert [(r.retriever, r.status) for r in results] == [("bm25-text", "ok")]
    return out


@pytest.fixture(scope="module")
def target(results_dir: Path, dataset: str) -> Target:
    """The on-screen-text or English speech query whose bm25-text top-1 window fits the
    truth best (deterministic: BM25 has no randomness)."""
    from bench.datasets import resolve_dataset

    qs = resolve_dataset(dataset)
    preds_path = next(results_dir.rglob(f"{dataset}/test.predictions.jsonl"))
    preds = {str(row["qid"]): row for row in map(json.loads, preds_path.read_text().splitlines())}
    scored = []
    for q in qs.queries:
        wins = preds.get(str(q.qid), {}).get("pred_relevant_windows") or []
        wanted = "onscreen-text" in q.tags or ("speech" in q.tags and q.lang == "en")
        if not wins or not wanted or q.vid is None or not q.relevant_windows:
            continue
        top = (float(wins[0][0]), float(wins[0][1]))
        truth = max(q.relevant_windows, key=lambda w: iou(top, w))
        scored.append((iou(top, truth), str(q.qid), Target(str(q.qid), q.query, q.vid, truth, top)))
    assert scored, f"bm25-text found nothing for any text query of {dataset}"
    best_iou, _, best = min(scored, key=lambda t: (-t[0], t[1]))
    assert best_iou >= 0.5, f"bm25-text's best text query has IoU {best_iou:.2f} < 0.5"
    return best


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, results_dir: Path,
           dataset: str) -> Iterator[dict[str, Any]]:
    yield from serving(tmp_path_factory, dataset, ["--results", str(results_dir)])


@pytest.fixture(scope="module")
def fresh_server(tmp_path_factory: pytest.TempPathFactory, dataset: str) -> Iterator[dict[str, Any]]:
    """The Space as a fresh clone starts it: no --results and no results/ in the checkout."""
    if (REPO / "results").exists():
        pytest.skip("this checkout has a results/ directory, so the Space would read it")
    yield from serving(tmp_path_factory, dataset, [])


def serving(tmp_path_factory: pytest.TempPathFactory, dataset: str,
            args: list[str]) -> Iterator[dict[str, Any]]:
    """``python demo/app.py`` with ``args`` on a free port until the module's tests are done."""
    sessions = tmp_path_factory.mktemp("sessions")
    log_path = tmp_path_factory.mktemp("logs") / "app.log"
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SCENEBENCH_LLM_") and k != "SCENEBENCH_RESULTS"}
    env.update({"SCENEBENCH_DEMO_DATASET": dataset, "SCENEBENCH_SESSIONS_DIR": str(sessions),
                "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1",
                "PYTHONUNBUFFERED": "1"})
    cmd = [sys.executable, str(REPO / "demo" / "app.py"), "--host", "127.0.0.1", "--port", str(port),
           *args, "--methods", METHODS, "--device", "cpu"]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}/"
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"the app exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
                try:
                    with urllib.request.urlopen(url, timeout=5) as resp:
                        if resp.status == 200:
                            break
                except (urllib.error.URLError, OSError):
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"the app did not answer within {START_TIMEOUT_S} s:\n"
                                f"{log_path.read_text()[-3000:]}")
                time.sleep(1)
            yield {"url": url, "sessions": sessions, "log": log_path}
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any, server: dict[str, Any]) -> Iterator[Any]:
    yield from opened(browser.new_context(viewport={"width": 1280, "height": 1000}), server)


def opened(context: Any, server: dict[str, Any]) -> Iterator[Any]:
    """The Space loaded in ``context``, with its video list filled; no JavaScript errors after."""
    context.set_default_timeout(UI_TIMEOUT_MS)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.goto(server["url"], wait_until="domcontentloaded")
    # the second loading step fills the video list (it may build the embedded set)
    pg.wait_for_selector("#videos input[type=checkbox]", timeout=SEARCH_TIMEOUT_MS)
    yield pg
    context.close()
    assert errors == [], f"JavaScript errors in the page: {errors}"


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def choose_only(page: Any, vid: str) -> None:
    boxes = page.locator("#videos input[type=checkbox]")
    for i in range(boxes.count()):
        box = boxes.nth(i)
        want = box.get_attribute("name") == vid
        if box.is_checked() != want:
            box.click()
    checked = [boxes.nth(i).get_attribute("name") for i in range(boxes.count())
               if boxes.nth(i).is_checked()]
    assert checked == [vid]


def pick_option(page: Any, dropdown: str, label: str) -> None:
    page.click(f"{dropdown} input")
    page.get_by_role("option", name=label, exact=False).first.click()


def table_rows(page: Any, table: str) -> list[list[str]]:
    """The cell texts of a gr.Dataframe, row by row (its body is a grid of divs)."""
    rows: list[list[str]] = page.eval_on_selector_all(
        f"{table} .virtual-row",
        "rows => rows.map(r => Array.from(r.querySelectorAll('[role=gridcell]'))"
        ".map(c => c.innerText.trim()))")
    return rows


CARD = re.compile(r"#(\d+) · (.+?) · (\d\d:\d\d)-(\d\d:\d\d) · ([▰▱]{10}) "
                  r"(confident|weak|no threshold)")
PHONE = {"width": 390, "height": 844}


def test_search_finds_the_moment_and_plays_it(page: Any, target: Target, dataset: str) -> None:
    expect = sync_api.expect
    expect(page.locator("#best-note")).to_contain_text("Best on the")
    expect(page.locator("#retriever input")).to_have_value("bm25-text")
    choose_only(page, target.vid)
    page.fill("#query textarea", target.query)
    page.click("#search-btn")
    expect(page.locator("#search-status")).to_contain_text(
        re.compile(r"\d+ moments? from bm25-text in \d+ ms"), timeout=SEARCH_TIMEOUT_MS)
    captions = page.locator("#cards .caption-label")
    expect(captions.first).to_be_visible()
    first = CARD.fullmatch(captions.first.inner_text().strip())
    assert first is not None, captions.first.inner_text()
    # the app's best moment is the benchmark run's top-1 window for this query
    assert first.group(1, 2, 3, 4) == ("1", target.vid, mmss(target.top[0]), mmss(target.top[1]))
    assert iou(target.top, target.truth) >= 0.5
    expect(page.locator("#details")).to_contain_text(f"{target.vid}")
    expect(page.locator("#timeline img")).to_be_visible()
    shot(page, f"search-{dataset}")

    page.locator("#cards .thumbnail-item").first.click()
    video = page.locator("#player video")
    expect(video).to_have_attribute("src", re.compile(r"\.mp4$"), timeout=SEARCH_TIMEOUT_MS)
    shot(page, "search-playing")


def test_empty_query_is_a_prompt(page: Any) -> None:
    page.fill("#query textarea", "   ")
    page.click("#search-btn")
    sync_api.expect(page.locator("#search-status")).to_contain_text(
        "Type what you are looking for (any language), or give an example image.")
    assert page.locator(".toast-body").count() == 0  # a prompt, not an error toast


def test_compare_leaderboard_and_browser_tabs(page: Any, target: Target, dataset: str) -> None:
    expect = sync_api.expect
    page.get_by_role("tab", name="Compare").click()
    pick_option(page, "#bench-query", target.label)
    expect(page.locator("#cmp-query textarea")).to_have_value(target.query)
    page.click("#compare-btn")
    expect(page.locator("#cmp-status")).to_contain_text("ground truth in green",
                                                        timeout=SEARCH_TIMEOUT_MS)
    texts = {row[0]: row for row in table_rows(page, "#cmp-table")}
    assert sorted(texts) == ["bm25-text", "dense-text-minilm", "llm-endpoint"]
    window = f"{mmss(target.top[0])}-{mmss(target.top[1])}"
    assert texts["bm25-text"][1] == window
    assert texts["bm25-text"][3] == f"{iou(target.top, target.truth):.2f}"
    assert re.fullmatch(r"\d+", texts["bm25-text"][4])  # latency in ms
    assert texts["llm-endpoint"][4] == "–"
    assert texts["llm-endpoint"][5].startswith("unavailable: set SCENEBENCH_LLM_BASE_URL")
    expect(page.locator("#cmp-plot img")).to_be_visible()
    shot(page, "compare")

    page.get_by_role("tab", name="Leaderboard").click()
    expect(page.locator("#lb-dataset input")).to_have_value(f"{dataset} · test")
    expect(page.locator("#lb-table")).to_contain_text("bm25-text")
    board = table_rows(page, "#lb-table")
    assert [row[:3] for row in board] == [["1", "bm25-text", "bm25-text"]]
    expect(page.locator("#lb-plots img").first).to_be_visible()
    shot(page, "leaderboard")

    page.get_by_role("tab", name="Benchmark browser").click()
    expect(page.locator("#br-note")).to_contain_text(
        re.compile(r"\d+ quer(y|ies), 1 method with predictions\."))
    pick_option(page, "#br-query", target.label)
    truth = f"{mmss(target.truth[0])}-{mmss(target.truth[1])}"
    expect(page.locator("#br-truth")).to_contain_text(f"in {target.vid} — truth: {truth}")
    expect(page.locator("#br-table")).to_contain_text(window)
    assert table_rows(page, "#br-table") == [
        ["bm25-text", window, texts["bm25-text"][2], f"{iou(target.top, target.truth):.2f}"]]
    expect(page.locator("#br-video video")).to_have_attribute("src", re.compile(r"\.mp4$"))
    shot(page, "browser")


def test_upload_accepts_a_video_refuses_the_rest_and_cleans_up(
        page: Any, server: dict[str, Any], tmp_path: Path) -> None:
    expect = sync_api.expect
    clip = tmp_path / "my clip.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc=duration=3:size=160x120:rate=10", "-pix_fmt", "yuv420p",
                    "-c:v", "libx264", "-preset", "ultrafast", str(clip)], check=True, timeout=60)
    notes = tmp_path / "passwd"
    notes.write_text("root:x:0:0:root:/root:/bin/bash\n")
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(b"not a video at all" * 100)
    page.set_input_files("#upload input[type=file]", [str(clip), str(notes), str(fake)])
    status = page.locator("#upload-status")
    expect(status).to_contain_text("my_clip accepted (00:03)", timeout=SEARCH_TIMEOUT_MS)
    expect(status).to_contain_text("passwd: not a video file; upload one of .mp4")
    expect(status).to_contain_text("fake.mp4: not a readable video")
    expect(page.locator("#videos")).to_contain_text("my_clip · 00:03 (yours)")
    shot(page, "upload")
    sessions: Path = server["sessions"]
    stored = sorted(str(p.relative_to(sessions)) for p in sessions.rglob("*") if p.is_file()
                    and "uploads" in p.parts)
    assert len(stored) == 1 and stored[0].endswith("/uploads/my_clip.mp4"), stored
    folder = sessions / stored[0].split("/", 1)[0]

    page.context.close()  # the tab goes away: the unload handler deletes the folder
    deadline = time.monotonic() + 60
    while folder.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not folder.exists(), "the session folder outlived its browser session"



@pytest.fixture
def phone(browser: Any, server: dict[str, Any]) -> Iterator[Any]:
    """The page at 390×844, as on a phone (touch, mobile viewport)."""
    yield from opened(browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True,
                                          has_touch=True), server)


def fits_the_screen(page: Any, selector: str) -> None:
    """Nothing of ``selector`` sticks out sideways and the page does not scroll sideways."""
    box = page.locator(selector).first.bounding_box()
    assert box is not None and box["x"] >= -1 and box["x"] + box["width"] <= PHONE["width"] + 1, \
        (selector, box)
    wide = page.evaluate("document.scrollingElement.scrollWidth")
    assert wide <= PHONE["width"] + 1, f"the page scrolls sideways ({wide} px wide)"


def test_phone_search_cards_and_playing(phone: Any, target: Target) -> None:
    expect = sync_api.expect
    page = phone
    choose_only(page, target.vid)
    page.fill("#query textarea", target.query)
    page.locator("#search-btn").tap()
    expect(page.locator("#search-status")).to_contain_text(
        re.compile(r"(\d+ moments? from bm25-text in \d+ ms|No confident match)"),
        timeout=SEARCH_TIMEOUT_MS)
    captions = page.locator("#cards .caption-label")
    expect(captions.first).to_be_visible()
    assert CARD.fullmatch(captions.first.inner_text().strip()), captions.first.inner_text()
    for selector in ("#query", "#search-btn", "#cards", "#search-status"):
        fits_the_screen(page, selector)
    # cards two to a row: each at least a third of the screen wide, so they can be read
    card = page.locator("#cards .thumbnail-item").first.bounding_box()
    assert card is not None and card["width"] >= PHONE["width"] / 3, card
    shot(page, "phone-search")
    page.locator("#cards .thumbnail-item").first.tap()
    video = page.locator("#player video")
    expect(video).to_have_attribute("src", re.compile(r"\.mp4$"), timeout=SEARCH_TIMEOUT_MS)
    video.scroll_into_view_if_needed()
    fits_the_screen(page, "#player")
    shot(page, "phone-playing")


def test_phone_no_confident_match_and_leaderboard(phone: Any) -> None:
    expect = sync_api.expect
    page = phone
    pick_option(page, "#retriever", "dense-text-minilm")
    page.fill("#query textarea", "ピザを切る")
    page.locator("#search-btn").tap()
    status = page.locator("#search-status")
    expect(status).to_contain_text(re.compile(r"No confident match|moments? from"),
                                   timeout=SEARCH_TIMEOUT_MS)
    if "No confident match" in status.inner_text():
        # the nearest moments stay below the verdict, greyed
        expect(page.locator("#cards.unsure .thumbnail-item").first).to_be_visible()
        assert all(CARD.fullmatch(c.strip()) and c.strip().endswith("weak")
                   for c in page.locator("#cards .caption-label").all_inner_texts())
    fits_the_screen(page, "#cards")
    shot(page, "phone-no-confident-match")
    # on a phone the tabs that do not fit are under "More tabs"
    tab = page.get_by_role("tab", name="Leaderboard")
    if tab.count() and tab.first.is_visible():
        tab.first.click()
    else:
        page.locator('button[aria-label="More tabs"]').click()
        page.locator(".overflow-dropdown button", has_text="Leaderboard").click()
    expect(page.locator("#lb-table")).to_contain_text("bm25-text")
    expect(page.locator("#lb-plots img").first).to_be_visible()
    fits_the_screen(page, "#lb-plots")
    shot(page, "phone-leaderboard")


def test_a_fresh_space_draws_the_snapshot_leaderboard_when_its_tab_opens(
        browser: Any, fresh_server: dict[str, Any]) -> None:
    expect = sync_api.expect
    for page in opened(browser.new_context(viewport={"width": 1280, "height": 1000}), fresh_server):
        # the page is ready and the leaderboard is not drawn yet (its plots would delay it)
        expect(page.locator("#search-btn")).to_be_visible()
        assert table_rows(page, "#lb-table") == []
        page.get_by_role("tab", name="Leaderboard").click()
        expect(page.locator("#lb-table")).to_contain_text("chance-prior")
        board = table_rows(page, "#lb-table")
        ranks = [row[0] for row in board]
        assert ranks[0] == "1" and ranks.count("floor") == 2, board
        assert {row[1] for row in board if row[0] == "floor"} == {"chance-prior", "chance-random"}
        expect(page.locator("#lb-plots img").first).to_be_visible()
        shot(page, "fresh-leaderboard")
