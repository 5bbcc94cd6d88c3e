"""A journalist checks three images on the page served by ``provenance serve``, in headless Debian Chromium:
a re-shared copy of a registered photo (match), an edited copy (altered, with the change map over the original),
a copy with a person pasted in (altered, the change named in words), an unrelated photo (no match) and another photo
of a registered photo's scene (same scene: a lead, never altered). Screenshots go to tests/e2e/artifacts/."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image, ImageDraw

from tests.e2e.conftest import ARTIFACTS, Server

REGISTERED = {"kodim23.png": "Parrots at the market", "kodim05.png": "Motocross at dawn"}
PHOTOS = Path("kodak24")


def _ingest(server: Server, photo: Path, title: str) -> str:
    headers = {"Authorization": f"Bearer {server.key}"}
    resp = httpx.post(server.url + "/v1/assets", headers=headers, timeout=30,
                      files={"file": (photo.name, photo.read_bytes(), "image/png")},
                      data={"metadata": f'{{"title": "{title}", "author": "E. Example"}}'})
    assert resp.status_code == 202, resp.text
    return resp.json()["status_url"]


def _wait(server: Server, url: str, done: Any, timeout_s: float = 120) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        body = httpx.get(server.url + url, timeout=30).json()
        if done(body):
            return body
        assert time.monotonic() < deadline, f"timed out waiting on {url}: {body}\n{server.log()}"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def registered(server: Server, shared_photos: Path) -> dict[str, str]:
    """Ingest through the API, wait for the tasks, then for the server's own anchor of both records."""
    urls = {name: _ingest(server, shared_photos / PHOTOS / name, title) for name, title in REGISTERED.items()}
    cids = {}
    for name, url in urls.items():
        task = _wait(server, url, lambda t: t["state"] in ("succeeded", "failed"))
        assert task["state"] == "succeeded", task
        cids[name] = task["record_cid"]
    _wait(server, "/v1/checkpoints/latest",
          # the publisher's key registration is leaf 0, then the records
          lambda cp: cp.get("tree_size") == len(REGISTERED) + 1 and cp.get("anchor") is not None)
    return cids


def _benign_copy(src: Path, out: Path) -> Path:
    img = Image.open(src).convert("RGB")
    img = img.resize((img.width * 3 // 4, img.height * 3 // 4), Image.Resampling.LANCZOS)
    img.save(out, "JPEG", quality=80)
    return out


def _edited_copy(src: Path, out: Path) -> Path:
    """A patch of another part of the scene pasted over the subject (copy-move), then re-shared as JPEG."""
    img = Image.open(src).convert("RGB")
    w, h = img.size
    patch = img.crop((0, 0, w // 4, h // 4))
    img.paste(patch, (w // 2 - w // 8, h // 2 - h // 8))
    ImageDraw.Draw(img).text((w // 10, h - h // 8), "EXCLUSIVE", fill=(255, 255, 0))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    out.write_bytes(buf.getvalue())
    return out


def _check_on_page(browser: Any, server: Server, image: Path, shot: str) -> Any:
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(server.url + "/")
    page.set_input_files("#file-input", str(image))
    page.wait_for_selector("#result .card, #status.error", timeout=90_000)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(ARTIFACTS / shot), full_page=True)
    card = page.query_selector("#result .card")
    assert card is not None, f"no verdict card: {page.inner_text('#status')}\n{server.log()}"
    assert not errors, errors
    return page, card


def test_benign_copy_is_a_match_with_publisher_and_anchor(browser: Any, server: Server, registered: dict[str, str],
                                                          shared_photos: Path, tmp_path: Path) -> None:
    query = _benign_copy(shared_photos / PHOTOS / "kodim23.png", tmp_path / "reshared.jpg")
    page, card = _check_on_page(browser, server, query, "match.png")
    text = card.inner_text()
    assert card.get_attribute("data-verdict") == "match"
    assert "Match: this image is in the ledger" in text
    assert "harbour-times" in text and "Parrots at the market" in text and "E. Example" in text
    assert "Registered" in text and "On-chain timestamp" in text and "Transaction" in text
    assert "Signing key" in text and "Held by the service for the publisher" in text  # custody is shown
    assert "0x" in card.query_selector("dd code").inner_text()
    assert "None in this file" in text  # the re-shared copy carries no Content Credentials
    assert registered["kodim23.png"] in text
    original = card.query_selector("img.original")
    assert original.evaluate("img => img.complete && img.naturalWidth > 0")
    assert page.evaluate("document.activeElement.id") == "verdict-heading"  # focus moves to the verdict
    assert card.query_selector("p.small-copy") is None  # compared at full size: nothing it cannot vouch for
    page.close()


def test_a_thumbnail_match_says_what_its_size_cannot_rule_out(browser: Any, server: Server,
                                                               registered: dict[str, str], shared_photos: Path,
                                                               tmp_path: Path) -> None:
    """A 160 px copy is compared too small to rule out an edit of a percent or two (``Policy.match_floor``): the
    match says so, where a full-size copy's does not (the test above)."""
    img = Image.open(shared_photos / PHOTOS / "kodim23.png").convert("RGB")
    img.resize((160, 160 * img.height // img.width), Image.Resampling.LANCZOS).save(tmp_path / "thumb.jpg",
                                                                                    "JPEG", quality=85)
    page, card = _check_on_page(browser, server, tmp_path / "thumb.jpg", "match-thumbnail.png")
    assert card.get_attribute("data-verdict") == "match", card.inner_text()
    note = card.query_selector("p.small-copy")
    assert note is not None, card.inner_text()
    assert "Checked at a small size" in note.inner_text()
    assert "% of the picture could go unseen" in note.inner_text()
    page.close()


def test_edited_copy_is_altered_with_the_change_map(browser: Any, server: Server, registered: dict[str, str],
                                                    shared_photos: Path, tmp_path: Path) -> None:
    query = _edited_copy(shared_photos / PHOTOS / "kodim05.png", tmp_path / "edited.jpg")
    page, card = _check_on_page(browser, server, query, "altered.png")
    text = card.inner_text()
    assert card.get_attribute("data-verdict") == "altered", text
    assert "Altered" in text and "Motocross at dawn" in text and "harbour-times" in text
    overlay = card.query_selector("img.change-map")
    assert overlay is not None and overlay.evaluate("img => img.complete && img.naturalWidth > 0")
    page.click("label[for=toggle-changes]")  # the overlay can be hidden to compare
    assert overlay.evaluate("img => img.hidden")
    page.close()


def test_an_inserted_person_is_named_in_words(browser: Any, server: Server, registered: dict[str, str],
                                             shared_photos: Path, tmp_path: Path) -> None:
    """The astronaut pasted into the parrots photo's top-left corner: the card says what changed, not only where."""
    img = Image.open(shared_photos / PHOTOS / "kodim23.png").convert("RGB")
    person = Image.open(shared_photos / "skimage" / "astronaut.png").convert("RGB").crop((6, 16, 359, 512))
    img.paste(person.resize((140, 197), Image.Resampling.BOX), (20, 0))
    query = tmp_path / "person-added.jpg"
    img.save(query, "JPEG", quality=90)
    page, card = _check_on_page(browser, server, query, "altered-object.png")
    text = card.inner_text()
    assert card.get_attribute("data-verdict") == "altered", text
    assert "What changed" in text and "person added near" in text, text
    assert card.query_selector("ul.object-changes li") is not None
    page.close()


def test_unrelated_photo_is_no_match(browser: Any, server: Server, registered: dict[str, str],
                                     shared_photos: Path) -> None:
    page, card = _check_on_page(browser, server, shared_photos / PHOTOS / "kodim20.png", "no_match.png")
    assert card.get_attribute("data-verdict") == "no_match"
    assert "No match in the ledger" in card.inner_text()
    page.close()


def test_a_non_image_shows_the_services_reason(browser: Any, server: Server, tmp_path: Path) -> None:
    bogus = tmp_path / "notes.jpg"
    bogus.write_text("meeting notes, not a photo")
    page = browser.new_page()
    page.goto(server.url + "/")
    page.set_input_files("#file-input", str(bogus))
    status = page.wait_for_selector("#status.error")
    assert "not an image" in status.inner_text()
    assert page.is_hidden("#result")
    page.close()


def test_another_photo_of_the_scene_is_a_lead_never_altered(browser: Any, server: Server, registered: dict[str, str],
                                                             shared_photos: Path) -> None:
    """The left photo of the motorcycle stereo pair is registered; the right one, another photo of that scene, is
    checked: the card says so and offers the registered photo as a lead, with no change map and no claim of edit."""
    url = _ingest(server, shared_photos / "skimage" / "motorcycle_left.png", "Motorcycle, left camera")
    task = _wait(server, url, lambda t: t["state"] in ("succeeded", "failed"))
    assert task["state"] == "succeeded", task
    page, card = _check_on_page(browser, server, shared_photos / "skimage" / "motorcycle_right.png",
                                "same_scene.png")
    text = card.inner_text()
    assert card.get_attribute("data-verdict") == "same_scene", text
    assert "Same scene: another photo" in text and "Motorcycle, left camera" in text
    assert "Registered photo of the same scene (a lead)" in text
    assert card.query_selector("img.change-map") is None and "What changed" not in text
    page.close()
