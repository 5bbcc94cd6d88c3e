"""The journalist page offers each answer's signed receipt: a download that verifies offline under the log's key,
and a permalink (``/?receipt=ID``) that re-displays the verdict card from the stored receipt, in headless Debian
Chromium against a real ``provenance serve``."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from provenance.receipts import verify_receipt
from tests.e2e.conftest import ARTIFACTS, Server
from tests.e2e.test_journalist_page import _benign_copy, _check_on_page, _ingest, _wait

PHOTO = Path("kodak24") / "kodim23.png"


@pytest.fixture(scope="module")
def parrots(server: Server, shared_photos: Path) -> str:
    """The parrots photo registered, and in a checkpoint the server signed (it anchors every second)."""
    task = _wait(server, _ingest(server, shared_photos / PHOTO, "Parrots at the market"),
                 lambda t: t["state"] in ("succeeded", "failed"))
    assert task["state"] == "succeeded", task
    cid = task["record_cid"]
    _wait(server, f"/v1/records/{cid}/proof", lambda p: p.get("checkpoint") is not None)
    time.sleep(0.5)
    return cid


def _verifier_key(server: Server) -> str:
    return httpx.get(server.url + "/v1/checkpoints/latest", timeout=30).json()["verifier_key"]


def _open_permalink(browser: Any, server: Server, href: str, shot: str) -> tuple[Any, Any, list[str]]:
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server.url + href)
    page.wait_for_selector("#result .card, #status.error", timeout=30_000)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(ARTIFACTS / shot), full_page=True)
    return page, page.query_selector("#result .card"), errors


_FACTS = ("Publisher", "Title", "Author", "Registered", "On-chain timestamp", "Transaction")


def _facts(card: Any) -> dict[str, str]:
    """The verdict card's record facts (label -> value) that a permalink must show as the live answer did."""
    pairs = card.evaluate("""c => [...c.querySelectorAll('dl.facts dt')].map(dt => [dt.textContent,
                                                                           dt.nextElementSibling.textContent])""")
    return {label: value for label, value in pairs if label in _FACTS}


def test_receipt_downloads_verifies_and_its_permalink_redisplays_the_card(
        browser: Any, server: Server, parrots: str, shared_photos: Path, tmp_path: Path) -> None:
    query = _benign_copy(shared_photos / PHOTO, tmp_path / "reshared.jpg")
    page, card = _check_on_page(browser, server, query, "receipt-match.png")
    assert card.get_attribute("data-verdict") == "match"
    assert "Signed receipt" in card.inner_text()
    link = card.query_selector("a.receipt-download")
    with page.expect_download() as download:
        link.click()
    saved = Path(download.value.path()).read_bytes()
    receipt = verify_receipt(saved, _verifier_key(server))
    assert receipt.verdict == "match" and receipt.record_cid == parrots
    assert receipt.query_sha256 == hashlib.sha256(query.read_bytes()).hexdigest()
    assert download.value.suggested_filename == f"receipt-{receipt.receipt_id}.json"
    href = card.query_selector("a.receipt-permalink").get_attribute("href")
    assert href == f"/?receipt={receipt.receipt_id}"
    live_facts = _facts(card)
    page.close()

    page, card, errors = _open_permalink(browser, server, href, "receipt-permalink.png")
    assert card is not None, page.inner_text("#status")
    text = card.inner_text()
    assert card.get_attribute("data-verdict") == "match"
    assert "Match: this image is in the ledger" in text and "Saved check from" in text
    assert parrots in text and _facts(card) == live_facts and {"Publisher", "Title", "Transaction"} <= set(live_facts)
    assert "harbour-times" in text and "Parrots at the market" in text
    assert f"checkpoint {receipt.checkpoint.size} of {receipt.checkpoint.origin}" in text
    assert receipt.query_sha256 in text
    assert card.query_selector("img.original").evaluate("img => img.complete && img.naturalWidth > 0")
    assert not errors, errors
    page.close()


def test_no_match_permalink_says_not_registered_as_of_its_checkpoint(
        browser: Any, server: Server, parrots: str, shared_photos: Path) -> None:
    page, card = _check_on_page(browser, server, shared_photos / "kodak24" / "kodim20.png", "receipt-no-match.png")
    assert card.get_attribute("data-verdict") == "no_match"
    href = card.query_selector("a.receipt-permalink").get_attribute("href")
    page.close()
    receipt = verify_receipt(httpx.get(server.url + "/v1/receipts/" + href.rsplit("=", 1)[1], timeout=30).content,
                             _verifier_key(server))
    page, card, errors = _open_permalink(browser, server, href, "receipt-permalink-no-match.png")
    text = card.inner_text()
    assert "No match in the ledger" in text and "Saved check from" in text
    assert f"Not registered as of checkpoint {receipt.checkpoint.size} of" in text
    assert receipt.checkpoint.size > 0 and not errors
    page.close()


@pytest.mark.parametrize("receipt_id, message", [("not-a-receipt", "not valid"), ("0" * 32, "no receipt")])
def test_a_bad_permalink_says_why(browser: Any, server: Server, receipt_id: str, message: str) -> None:
    page = browser.new_page()
    page.goto(f"{server.url}/?receipt={receipt_id}")
    status = page.wait_for_selector("#status.error", timeout=30_000)
    assert message in status.inner_text()
    assert page.is_hidden("#result")
    page.close()
