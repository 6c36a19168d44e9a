"""The web gallery end to end in headless Chromium (Debian's chromium + chromedriver, Selenium).

Against the real app (the session's ``live_app``; or any running server: ``SCENECHAIN_E2E_URL``
and optionally ``SCENECHAIN_E2E_TOKEN``): paste a token, submit an advanced brief through the form,
watch the live progress until it completes, check the storyboard (scenes in order, chain, best
images, variations with four scores + overall, below-threshold badges, the enhancement trace, the
event log, an export) and the list. Each step leaves a screenshot (``SCENECHAIN_SCREENSHOT_DIR``,
else a temp dir) that must be a real, non-blank page image. Assertions are on DOM state, not pixels.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from PIL import Image

from api.auth import mint_token
from serve.config import AppArgs

pytestmark = pytest.mark.integration

CHROMIUM = os.environ.get("SCENECHAIN_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("SCENECHAIN_CHROMEDRIVER", "/usr/bin/chromedriver")
BRIEF = "A 20-second ad for a citrus soda: friends share a can on a rooftop at sunset"
FINISH_TIMEOUT_S = 420.0


# The server fixture may start the session's live_app: run this module with the live_app tests, last.
USES_LIVE_APP = True


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.skip(f"no {CHROMIUM} / {CHROMEDRIVER}: run scripts/install-browser.sh")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,1400",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(base URL, token) of the server under test."""
    url = os.environ.get("SCENECHAIN_E2E_URL")
    if url:
        return url.rstrip("/"), os.environ.get("SCENECHAIN_E2E_TOKEN") or mint_token(
            AppArgs.from_env().jwt, "gallery"
        )
    live_app = request.getfixturevalue("live_app")
    return live_app.base_url, mint_token(AppArgs.from_env().jwt, "gallery")


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Any, str], Path]:
    directory = Path(
        os.environ.get("SCENECHAIN_SCREENSHOT_DIR") or tmp_path_factory.mktemp("gallery-screenshots")
    )
    directory.mkdir(parents=True, exist_ok=True)

    def take(driver: Any, name: str) -> Path:
        path = directory / f"{name}.png"
        driver.save_screenshot(str(path))
        image = Image.open(io.BytesIO(path.read_bytes()))
        assert image.format == "PNG" and image.width >= 800 and image.height >= 600, (path, image.size)
        # A rendered page, not a blank or an error screen: many distinct colours.
        colours = image.convert("RGB").resize((200, 200)).getcolors(maxcolors=40_000) or []
        assert len(colours) > 20, f"{path} looks blank ({len(colours)} colours)"
        return path

    return take


def wait_for(driver: Any, condition: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # a stale element mid-render: try again
            last_error = exc
        time.sleep(0.2)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what or condition} (last error: {last_error})"
    )


def css(driver: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By  # noqa: PLC0415

    return driver.find_elements(By.CSS_SELECTOR, selector)


def js_errors(driver: Any) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def sign_in(driver: Any, base: str, token: str) -> None:
    driver.get(f"{base}/")  # redirects to /ui/
    wait_for(
        driver, lambda: driver.execute_script("return document.body.dataset.view") == "login", what="login"
    )
    css(driver, "#token-input")[0].send_keys(token)
    css(driver, "#login-submit")[0].click()
    wait_for(
        driver, lambda: driver.execute_script("return document.body.dataset.view") == "list", what="list"
    )


def test_a_wrong_token_is_refused_with_a_message(browser: Any, server: tuple[str, str]) -> None:
    base, _token = server
    browser.get(f"{base}/ui/")
    browser.execute_script("localStorage.clear()")
    browser.refresh()
    wait_for(browser, lambda: css(browser, "#token-input"), what="token field")
    css(browser, "#token-input")[0].send_keys("not-a-jwt")
    css(browser, "#login-submit")[0].click()

    error = wait_for(browser, lambda: css(browser, "#login-error")[0].text, what="login error")
    assert "refused" in error and "invalid token" in error
    assert browser.execute_script("return localStorage.getItem('scenechain.token')") is None


def test_submit_watch_and_inspect_a_storyboard(
    browser: Any, server: tuple[str, str], shots: Callable[[Any, str], Path]
) -> None:
    base, token = server
    driver = browser
    driver.get_log("browser")  # drop what earlier tests logged (the refused token's 401)
    driver.get(f"{base}/ui/")
    driver.execute_script("localStorage.clear()")

    # 1. sign in by pasting the token
    sign_in(driver, base, token)
    assert driver.current_url.startswith(f"{base}/ui/")
    assert css(driver, "#whoami")[0].text == jwt.decode(token, options={"verify_signature": False})["sub"]
    shots(driver, "01_list")

    # 2. the form, with the advanced settings
    css(driver, "[data-testid=nav-new]")[0].click()
    wait_for(driver, lambda: css(driver, "#prompt")[0].is_displayed(), what="form")
    assert not css(driver, "#advanced_image_num_variations")[0].is_enabled()  # off until advanced is on
    css(driver, "#prompt")[0].send_keys(BRIEF)
    for field, value in (("#num_scenes", "2"), ("#seed", "31")):
        css(driver, field)[0].clear()
        css(driver, field)[0].send_keys(value)
    css(driver, "#use_advanced_image_generation")[0].click()
    for field, value in (
        ("#advanced_image_num_variations", "2"),
        ("#advanced_image_max_enhancement_iterations", "1"),
        ("#advanced_image_quality_threshold", "99"),  # every scene lands below it: the badge shows
    ):
        css(driver, field)[0].clear()
        css(driver, field)[0].send_keys(value)
    shots(driver, "02_form")
    css(driver, "#generate-submit")[0].click()

    # 3. live progress until completed
    wait_for(driver, lambda: "#/g/" in driver.current_url, what="storyboard page")
    generation_id = driver.current_url.rsplit("/", 1)[-1]
    wait_for(
        driver,
        lambda: (
            css(driver, "#storyboard")[0].get_attribute("data-status") in ("queued", "running", "completed")
        ),
        what="first status",
    )
    shots(driver, "03_in_progress")
    wait_for(
        driver,
        lambda: (
            css(driver, "#storyboard")[0].get_attribute("data-status") in ("completed", "failed", "cancelled")
        ),
        timeout=FINISH_TIMEOUT_S,
        what="the generation to finish",
    )
    storyboard = css(driver, "#storyboard")[0]
    assert storyboard.get_attribute("data-status") == "completed", css(driver, "#sb-error")[0].text
    assert storyboard.get_attribute("data-id") == generation_id
    assert storyboard.get_attribute("data-scenes-done") == "2"

    # 4. the storyboard: scenes in order, chained, best image large, variations scored, badges
    scenes = css(driver, "#scenes .scene")
    assert [scene.get_attribute("data-scene") for scene in scenes] == ["1", "2"]
    assert all(scene.get_attribute("data-done") == "1" for scene in scenes)
    assert "chained" in css(driver, '.scene[data-scene="2"] .chain-link')[0].text
    assert len(css(driver, "#chain .thumb")) == 2 and len(css(driver, "#chain .arrow")) == 1
    wait_for(
        driver,
        lambda: driver.execute_script(
            "return [...document.querySelectorAll('#scenes img.best')].every(i => i.complete && i.naturalWidth > 0)"
        ),
        what="best images to load",
    )
    assert len(css(driver, "#scenes img.best")) == 2
    for scene in ("1", "2"):
        variations = css(driver, f'.scene[data-scene="{scene}"] .variation')
        assert len(variations) == 2
        assert len(css(driver, f'.scene[data-scene="{scene}"] .variation.best')) == 1
        rows = css(driver, f'.scene[data-scene="{scene}"] .variation tr')
        labels = [row.text.split()[0] for row in rows[:5]]
        assert labels == ["PickScore", "CLIP", "VQA", "Aesthetic", "Overall"]
    assert len(css(driver, ".badge-below")) == 2  # threshold 99
    assert any("below the quality threshold" in li.text for li in css(driver, "#sb-warnings li"))
    event_types = [li.get_attribute("data-type") for li in css(driver, "#event-log li")]
    assert event_types.count("scene_done") == 2 and event_types[-1] == "done"
    shots(driver, "04_storyboard")

    # 5. the enhancement trace of scene 1: original → rewrite(s) with critic scores → final
    trace = css(driver, '.scene[data-scene="1"] details.trace')[0]
    driver.execute_script("arguments[0].scrollIntoView(); arguments[0].open = true", trace)
    wait_for(driver, lambda: trace.get_attribute("data-loaded") == "1", what="the trace")
    steps = [step.text for step in css(driver, '.scene[data-scene="1"] .trace .step-label')]
    assert steps[0] == "Original prompt" and steps[-1] == "Final prompt"
    assert "Cinematographer rewrite 1" in steps
    assert css(driver, '.scene[data-scene="1"] .trace .scores')[0].text.startswith("Critic: overall")
    shots(driver, "05_trace")

    # 6. an export downloads (fetched with the token)
    button = css(driver, "#export-sheet")[0]
    driver.execute_script("arguments[0].scrollIntoView()", button)
    button.click()
    wait_for(driver, lambda: int(button.get_attribute("data-bytes") or 0) > 1000, what="the contact sheet")

    # 7. the list shows it, completed
    css(driver, "[data-testid=nav-list]")[0].click()
    row = wait_for(
        driver, lambda: css(driver, f'#generations tr[data-id="{generation_id}"]'), what="the list row"
    )[0]
    assert row.get_attribute("data-status") == "completed" and "2/2" in row.text
    shots(driver, "06_list_done")

    assert js_errors(driver) == []


# -- the other entry points, against the same live server -------------------------------------------


def test_cli_generate_with_live_progress_and_downloads(server: tuple[str, str], tmp_path: Path) -> None:
    from scenechain import Client, cli  # noqa: PLC0415

    base, token = server
    out = tmp_path / "storyboard"

    # Simple mode keeps it quick; the browser test above runs the advanced path.
    brief = ["generate", "A 15-second ad for a bike light", "--scenes", "2", "--seed", "5", "--out", str(out)]
    code = cli.main([*brief, "--url", base, "--token", token])

    assert code == 0
    status = json.loads((out / "status.json").read_text())
    assert status["status"] == "completed" and len(status["scenes"]) == 2
    for name in ("scene_01.png", "scene_02.png", "contact_sheet.png"):
        assert Image.open(out / name).format == "PNG"
    assert (out / "animatic.mp4").read_bytes()[4:8] == b"ftyp"
    # the finished generation's log replays whole: numbered from 1 without gaps, ending in done
    with Client(base, token) as client:
        events = list(client.events(status["id"]))
    assert events[-1].type == "done" and events[-1].data["status"] == "completed"
    logged = [event.seq for event in events if event.seq]
    assert logged == list(range(1, len(logged) + 1))
    assert sum(event.type == "scene_done" for event in events) == 2
