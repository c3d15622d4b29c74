"""The web chat in headless Chromium (Debian's chromium + chromium-driver, driven by Selenium).

A real server (uvicorn on a free 127.0.0.1 port) runs a scripted model that calls the sandboxed code
interpreter. Screenshots are saved under each test's ``tmp_path`` and their paths printed.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from qwenkit.server import create_app
from tests.server.helpers import brain_agent, live_server

pytestmark = [pytest.mark.browser, pytest.mark.sandbox, pytest.mark.timeout(240)]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
WAIT_S = 90


def _require_browser() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(p)]
    if not missing:
        return
    why = f"headless Chromium is not installed ({', '.join(missing)} missing; apt-get install chromium chromium-driver)"
    if os.environ.get("QWENKIT_REQUIRE_BROWSER") == "1":
        pytest.fail(why)
    pytest.skip(why)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with live_server(create_app(brain_agent())) as base:
        yield base


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    _require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,900", "--lang=en-US", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    browser = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    browser.set_page_load_timeout(30)
    try:
        yield browser
    finally:
        browser.quit()


def until(driver: Any, check: Callable[[Any], Any], what: str, timeout: float = WAIT_S) -> Any:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1).until(check)
    except TimeoutException:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None


def screenshot(driver: Any, path: Path) -> Path:
    driver.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path


def open_new_chat(driver: Any, base: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(base + "/")
    until(driver, lambda d: d.execute_script("return document.getElementById('model-info').textContent"),
          "the page to load its info")
    before = driver.execute_script("return location.hash")
    driver.find_element(By.ID, "new-chat").click()
    until(driver, lambda d: d.execute_script("return location.hash") not in ("", before), "a new conversation")


def send(driver: Any, text: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    box = driver.find_element(By.ID, "prompt")
    box.send_keys(text)
    box.send_keys(Keys.ENTER)  # Enter sends: keyboard alone drives the chat


def idle(driver: Any) -> bool:
    return bool(driver.execute_script("return !document.getElementById('send').disabled "
                                      "&& document.getElementById('stop').disabled"))


def test_plot_sin_streams_text_shows_the_tool_card_and_the_plot(driver: Any, server: str, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    open_new_chat(driver, server)
    send(driver, "plot sin(x)")
    until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".msg.user"), "the user's message")
    until(driver, lambda d: "I'll plot it." in d.find_element(By.ID, "messages").text, "the streamed text")
    card = until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".tool-card[data-state=done]"), "the tool card")[0]
    assert card.get_attribute("open") is not None
    assert "np.sin(x)" in card.find_element(By.CSS_SELECTOR, "pre code").text
    assert card.find_elements(By.CSS_SELECTOR, "pre code .tok-kw")  # highlighted
    assert "plotted 200 points" in card.find_element(By.CSS_SELECTOR, ".output").text
    width = until(driver, lambda d: d.execute_script(
        "var i = document.querySelector('.tool-card img.figure');"
        "return i && i.complete && i.naturalWidth > 0 ? [i.naturalWidth, i.naturalHeight] : null;"), "the plot")
    assert width[0] > 100 and width[1] > 100
    until(driver, idle, "the turn to end")
    final = driver.find_elements(By.CSS_SELECTOR, ".msg.assistant .md strong")
    assert any(s.text == "sin(x)" for s in final)  # the answer rendered as Markdown
    assert "Working" not in driver.find_element(By.ID, "status").text
    shot = screenshot(driver, tmp_path / "plot-sin.png")
    assert shot.stat().st_size > 10_000


def test_upload_a_csv_and_the_code_reads_it(driver: Any, server: str, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    open_new_chat(driver, server)
    csv = tmp_path / "data.csv"
    csv.write_text("name,value\n甲,1.5\nb,2.5\n", encoding="utf-8")
    driver.find_element(By.ID, "upload").send_keys(str(csv))
    until(driver, lambda d: any("data.csv" in a.text for a in d.find_elements(By.CSS_SELECTOR, "#files a")),
          "the uploaded file in the list")
    send(driver, "sum the csv")
    until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".tool-card[data-state=done]"), "the tool card")
    until(driver, idle, "the turn to end")
    output = driver.find_element(By.CSS_SELECTOR, ".tool-card .output").text
    assert "total 4.0" in output
    screenshot(driver, tmp_path / "upload-csv.png")


def test_reload_reattaches_to_a_running_turn_and_stop_a_long_cell(driver: Any, server: str, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    open_new_chat(driver, server)
    send(driver, "sleep a while")
    until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".tool-card[data-state=running]"), "the running cell")
    driver.refresh()  # the page goes away mid-turn; the turn does not, and the page picks it up again
    until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".tool-card[data-state=running]"),
          "the running cell after the reload")
    until(driver, lambda d: d.find_element(By.ID, "stop").is_enabled(), "the stop button after the reload")
    assert len(driver.find_elements(By.CSS_SELECTOR, ".msg.user")) == 1
    stop = driver.find_element(By.ID, "stop")
    assert stop.is_enabled()
    time.sleep(0.5)
    started = time.monotonic()
    stop.click()
    until(driver, lambda d: "Stopped." in d.find_element(By.ID, "messages").text, "the stop note", timeout=30)
    until(driver, idle, "the composer to be usable again", timeout=30)
    card = driver.find_element(By.CSS_SELECTOR, ".tool-card")
    assert card.get_attribute("data-state") == "error" and "stopped" in card.find_element(By.TAG_NAME, "summary").text
    assert time.monotonic() - started < 30
    screenshot(driver, tmp_path / "stopped.png")


def test_markdown_is_escaped_chinese_renders_and_phone_width_fits(driver: Any, server: str, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    open_new_chat(driver, server)
    send(driver, "show some html")
    until(driver, idle, "the turn to end")
    reply = driver.find_elements(By.CSS_SELECTOR, ".msg.assistant")[-1]
    assert reply.find_elements(By.CSS_SELECTOR, "img") == []
    assert reply.find_elements(By.CSS_SELECTOR, "script") == []
    assert reply.find_elements(By.CSS_SELECTOR, "a") == []  # a javascript: link is not made a link
    assert "<img src=x" in reply.text and reply.find_element(By.CSS_SELECTOR, "strong").text == "safe"
    assert driver.execute_script("return window.pwned === undefined")
    rendered = driver.execute_script(
        "return [QKMarkdown.render('<b>x</b> `<i>y</i>` [a](javascript:alert(1)) [ok](https://e.x/?a=1&b=\"2)'),"
        "        QKMarkdown.render('```\\n</code><script>x</script>\\n```'),"
        "        QKMarkdown.render('| a | b |\\n|---|---|\\n| <u>1</u> | 2 |')];")
    assert "<b>" not in rendered[0] and "&lt;b&gt;x&lt;/b&gt;" in rendered[0]
    assert "<code>&lt;i&gt;y&lt;/i&gt;</code>" in rendered[0] and "javascript:" not in rendered[0].split("[a]")[0]
    assert 'href="https://e.x/?a=1&amp;b=&quot;2"' in rendered[0]
    assert "<script>" not in rendered[1] and "&lt;/code&gt;&lt;script&gt;" in rendered[1]
    assert "<table>" in rendered[2] and "&lt;u&gt;1&lt;/u&gt;" in rendered[2]
    send(driver, "say hello")
    until(driver, idle, "the second turn to end")
    order = [e.get_attribute("class") for e in driver.find_elements(By.CSS_SELECTOR, "#messages .msg")]
    assert order == ["msg user", "msg assistant", "msg user", "msg assistant"]  # each reply under its question
    reply = driver.find_elements(By.CSS_SELECTOR, ".msg.assistant")[-1]
    assert reply.find_element(By.CSS_SELECTOR, "strong").text == "你好"
    assert reply.find_elements(By.CSS_SELECTOR, "pre code .tok-fn")
    # Chinese text gets real glyphs (a CJK font), not the same-width boxes of a missing one.
    widths = driver.execute_script(
        "var c = document.createElement('canvas').getContext('2d');"
        "c.font = getComputedStyle(document.body).font;"
        "return [c.measureText('你').width, c.measureText('好').width, c.measureText('\\u4e00').width];")
    assert all(w > 0 for w in widths)
    send(driver, "think first")
    until(driver, idle, "the thinking turn to end")
    reply = driver.find_elements(By.CSS_SELECTOR, ".msg.assistant")[-1]
    fold = reply.find_element(By.CSS_SELECTOR, "details.reasoning")
    assert fold.get_attribute("open") is None  # reasoning is folded away
    assert not reply.find_element(By.CSS_SELECTOR, "details.reasoning > div").is_displayed()
    assert "<think>" not in reply.text and reply.find_element(By.CSS_SELECTOR, ".md strong").text == "friend"
    fold.find_element(By.TAG_NAME, "summary").click()
    assert "简短一点" in reply.find_element(By.CSS_SELECTOR, "details.reasoning > div").text
    driver.set_window_size(390, 844)
    try:
        until(driver, lambda d: d.find_element(By.ID, "toggle-sidebar").is_displayed(), "the phone layout")
        assert driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
        until(driver, lambda d: d.execute_script(
            "return document.getElementById('sidebar').getBoundingClientRect().right <= 0"), "the sidebar to fold away")
        driver.find_element(By.ID, "toggle-sidebar").click()
        until(driver, lambda d: d.execute_script(
            "return document.getElementById('sidebar').getBoundingClientRect().left >= 0"), "the sidebar to open")
        screenshot(driver, tmp_path / "phone-sidebar.png")
        driver.find_element(By.ID, "close-sidebar").click()
        until(driver, lambda d: d.execute_script(
            "return document.getElementById('sidebar').getBoundingClientRect().right <= 0"), "the sidebar to close")
        screenshot(driver, tmp_path / "phone.png")
    finally:
        driver.set_window_size(1280, 900)
