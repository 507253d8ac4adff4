"""The reviewer flow in a real browser against a real console over a member state
filled from a real exchange: log in, list, open, reveal, claim, decide by keyboard,
and see the opinion on the exchange. Each page is screenshotted and checked for
accessibility basics (labels, alt text, language, titles, keyboard use)."""

from __future__ import annotations

from pathlib import Path

from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from clients.queue import State
from tests.browser.conftest import screenshot
from tests.console.conftest import PASSWORD, ConsoleEnv

# Every visible form control needs an accessible name; every image alt text.
A11Y = """
const problems = [];
if (!document.documentElement.lang) problems.push("html has no lang");
if (!document.title.trim()) problems.push("page has no title");
if (!document.querySelector("h1")) problems.push("page has no h1");
for (const el of document.querySelectorAll("input, select, textarea")) {
  if (el.type === "hidden") continue;
  const named = (el.id && document.querySelector(`label[for="${el.id}"]`)) || el.closest("label")
    || el.getAttribute("aria-label") || el.getAttribute("aria-labelledby");
  if (!named) problems.push(`unlabelled ${el.tagName} ${el.name}`);
}
for (const b of document.querySelectorAll("button")) if (!b.textContent.trim()) problems.push("empty button");
for (const img of document.querySelectorAll("img")) if (!img.alt) problems.push(`image without alt ${img.src}`);
return problems;
"""


def check_page(driver: WebDriver, name: str) -> Path:
    assert driver.execute_script(A11Y) == [], name
    return screenshot(driver, name)


def wait(driver: WebDriver) -> WebDriverWait:  # type: ignore[type-arg]
    """Bounded retry; htmx swaps the page under us, so stale elements are retried too."""
    return WebDriverWait(driver, 20, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException))


def press(driver: WebDriver, key: str) -> None:
    driver.find_element(By.TAG_NAME, "body").send_keys(key)


def test_reviewer_flow_end_to_end(console: ConsoleEnv, browser: WebDriver) -> None:
    item = console.item_for("a-csam")  # priority 0: first in the queue
    browser.get(console.url + "/")
    wait(browser).until(ec.presence_of_element_located((By.ID, "name")))  # redirected to the login page
    check_page(browser, "01-login")
    browser.find_element(By.ID, "name").send_keys("ana")
    browser.find_element(By.ID, "password").send_keys(PASSWORD + Keys.ENTER)
    wait(browser).until(ec.title_contains("Queue"))
    check_page(browser, "02-queue")
    assert browser.execute_script("return typeof htmx") == "object"  # the vendored copy loaded under the CSP
    assert f"{len([i for i in console.items() if i.state is State.PENDING])} items" in browser.find_element(By.ID, "count").text

    # keyboard: j focuses the first (highest priority) item, Enter opens it
    press(browser, "j")
    assert browser.switch_to.active_element.get_attribute("href").endswith(f"/items/{item.id}")
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    wait(browser).until(ec.title_contains(f"Item #{item.id}"))
    img = browser.find_element(By.ID, "preview-img")
    assert "Blurred greyscale preview" in img.get_attribute("alt") and "clear=1" not in img.get_attribute("src")
    rows = browser.find_elements(By.CSS_SELECTOR, "table.matches tbody tr")
    assert len(rows) == 1 and "alice" in rows[0].text and "csam" in rows[0].text and "high" in rows[0].text
    assert "verified" in rows[0].text and "test.trustwire.invalid/log size" in rows[0].text
    check_page(browser, "03-item-blurred")

    press(browser, "v")  # reveal: an explicit, recorded action
    wait(browser).until(lambda d: "clear=1" in d.find_element(By.ID, "preview-img").get_attribute("src"))
    assert browser.execute_script("return document.getElementById('preview-img').naturalWidth") > 0
    check_page(browser, "04-item-revealed")

    press(browser, "c")  # claim
    wait(browser).until(ec.text_to_be_present_in_element((By.ID, "item-state"), "in_review"))
    press(browser, "a")  # actioned, then the reason field has focus
    assert browser.find_element(By.ID, "decision-actioned").is_selected()
    assert browser.switch_to.active_element.get_attribute("id") == "reason"
    browser.switch_to.active_element.send_keys("matches a verified CSAM hash")
    browser.switch_to.active_element.send_keys(Keys.TAB + Keys.ENTER)  # tab to "Record decision"
    wait(browser).until(ec.text_to_be_present_in_element((By.ID, "item-state"), "actioned"))
    wait(browser).until(ec.text_to_be_present_in_element((By.ID, "opinion"), "true_positive sent"))
    assert "actioned by ana: matches a verified CSAM hash" in browser.find_element(By.ID, "history").text
    check_page(browser, "05-item-decided")

    # the decision is an opinion on the exchange: alice, the publisher, verifies it
    alice = console.tf.client("alice", state=True)
    alice.sync()
    assert alice.bank is not None and alice.bank.opinions("alice", "a-csam") == {"bob": "true_positive"}

    browser.get(console.url + "/history")
    assert "matches a verified CSAM hash" in browser.find_element(By.ID, "queue-events").text
    assert "reveal" in browser.find_element(By.ID, "audit").text
    check_page(browser, "06-history")
    browser.get(console.url + "/feedback")
    assert "carol: false_positive" in browser.find_element(By.ID, "feedback").text
    assert "true_positive" in browser.find_element(By.ID, "published").text
    assert "md5" in browser.find_element(By.ID, "by-type").text
    check_page(browser, "07-feedback")
    browser.get(console.url + "/prefs")
    check_page(browser, "08-prefs")
    # no CSP violation, failed script or missing resource on any page of the flow
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []


def test_second_reviewer_sees_the_owner_and_cannot_act(console: ConsoleEnv, browser: WebDriver) -> None:
    item = console.item_for("a-spam")
    assert console.bob.queue is not None
    console.bob.queue.claim(item.id, "ana")
    browser.get(console.url + "/login")
    browser.find_element(By.ID, "name").send_keys("ben")
    browser.find_element(By.ID, "password").send_keys(PASSWORD + Keys.ENTER)
    wait(browser).until(ec.title_contains("Queue"))
    browser.get(f"{console.url}/items/{item.id}")
    assert "Claimed by ana" in browser.find_element(By.ID, "owner").text
    assert not browser.find_elements(By.ID, "decide") and not browser.find_elements(By.ID, "claim")
    press(browser, "c")  # no claim button: the shortcut does nothing
    assert console.bob.queue.get(item.id).reviewer == "ana"
    check_page(browser, "09-claimed-by-other")
