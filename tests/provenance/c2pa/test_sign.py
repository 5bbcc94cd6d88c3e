"""Signed copies with our soft binding: they read back Valid (Trusted under our root), keep pixels, resist tampering."""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from PIL import Image

from provenance.c2pa import (
    RECORD_ASSERTION_LABEL,
    SOFT_BINDING_LABEL,
    C2paConfigError,
    C2paSigningConfig,
    C2paSigningError,
    C2paUnsupportedMediaError,
    SoftBinding,
    load_trust_anchors,
    manifest_store_json,
    read_c2pa,
    sign_with_soft_binding,
    trust_anchors_from_settings,
)
from provenance.config import Settings
from provenance.errors import ConfigError, InvalidImageError
from tests.provenance.c2pa.pki import LEAF_CN, LEAF_ORG, TestPki, issue, make_pki, pem_of_cert, pem_of_key

PHOTOS = {"image/jpeg": "thorn_perception/image1.jpg", "image/png": "skimage/coffee.png"}
BINDING = dict(binding_alg="org.provenance-service.phash", binding_value="c3a5e1f00f1e5a3c", model_id="phash-dct-v1")
RECORD_CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"


@pytest.fixture(scope="module")
def signed(shared_photos: Path, pki: TestPki) -> dict[str, tuple[bytes, bytes]]:
    """mime -> (original, signed copy), signed once per module."""
    out = {}
    for mime, rel in PHOTOS.items():
        original = (shared_photos / rel).read_bytes()
        out[mime] = (
            original,
            sign_with_soft_binding(
                original, mime, **BINDING, record_cid=RECORD_CID, title="Harbour at dawn", signer=pki.config()
            ),
        )
    return out


def pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))


@pytest.mark.parametrize("mime", list(PHOTOS))
def test_signed_copy_reads_back_valid_with_our_soft_binding(signed, mime: str) -> None:  # type: ignore[no-untyped-def]
    original, copy = signed[mime]
    summary = read_c2pa(copy)
    assert (summary.status, summary.validation_state) == ("present", "Valid")
    assert summary.failure_codes == ("signingCredential.untrusted",)  # no trust anchors given
    assert summary.soft_bindings == (SoftBinding("org.provenance-service.phash", "c3a5e1f00f1e5a3c", "phash-dct-v1"),)
    assert summary.record_cid == RECORD_CID
    assert summary.actions == ("c2pa.opened",)
    assert [(i.relationship, i.format) for i in summary.ingredients] == [("parentOf", mime)]
    assert (summary.signer, summary.signer_common_name) == (LEAF_ORG, LEAF_CN)
    assert (summary.claim_generator or "").startswith("provenance-service/")
    assert (summary.title, summary.format) == ("Harbour at dawn", mime)
    assert (summary.active_manifest or "").startswith("urn:c2pa:")
    assert np.array_equal(pixels(copy), pixels(original))  # only metadata was added
    assert read_c2pa(original).status == "absent"


@pytest.mark.parametrize("mime", list(PHOTOS))
def test_trusted_with_our_root_as_anchor(signed, pki: TestPki, mime: str) -> None:  # type: ignore[no-untyped-def]
    summary = read_c2pa(signed[mime][1], trust_anchors=pki.root_pem)
    assert (summary.validation_state, summary.failure_codes) == ("Trusted", ())
    assert summary.is_trusted


def test_another_root_does_not_make_it_trusted(signed) -> None:  # type: ignore[no-untyped-def]
    summary = read_c2pa(signed["image/jpeg"][1], trust_anchors=make_pki().root_pem)
    assert (summary.validation_state, summary.failure_codes) == ("Valid", ("signingCredential.untrusted",))


def test_trust_anchors_and_signer_from_settings(signed, pki: TestPki, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    files = pki.write(tmp_path)
    settings = Settings(
        data_dir=tmp_path,
        c2pa_trust_anchors=files["anchors"],
        c2pa_signing_cert=files["chain"],
        c2pa_signing_key=files["key"],
    )
    anchors = trust_anchors_from_settings(settings)
    assert read_c2pa(signed["image/png"][1], trust_anchors=anchors).validation_state == "Trusted"
    config = C2paSigningConfig.from_settings(settings)
    assert config is not None and config.alg == "es256" and config.leaf == pki.leaf
    assert trust_anchors_from_settings(Settings(data_dir=tmp_path)) is None
    assert C2paSigningConfig.from_settings(Settings(data_dir=tmp_path)) is None


def test_soft_binding_assertion_has_the_spec_shape(signed) -> None:  # type: ignore[no-untyped-def]
    store = manifest_store_json(signed["image/jpeg"][1])
    assert store is not None
    assertions = {a["label"]: a["data"] for a in store["manifests"][store["active_manifest"]]["assertions"]}
    assert assertions[SOFT_BINDING_LABEL] == {
        "alg": "org.provenance-service.phash",
        "alg-params": "phash-dct-v1",
        "blocks": [{"scope": {}, "value": "c3a5e1f00f1e5a3c"}],
        "pad": [],
    }
    assert assertions[RECORD_ASSERTION_LABEL] == {"record_cid": RECORD_CID}


def _flip_in_image_data(data: bytes, mime: str) -> bytes:
    """Flip bytes well inside the pixel data: JPEG scan data before EOI, PNG's last IDAT chunk."""
    buf = bytearray(data)
    if mime == "image/jpeg":
        at = len(buf) - 200
    else:
        idat = data.rfind(b"IDAT")
        at = idat + 4 + 100
    for i in range(at, at + 8):
        buf[i] ^= 0xFF
    return bytes(buf)


@pytest.mark.parametrize("mime", list(PHOTOS))
def test_tampered_copy_is_invalid(signed, pki: TestPki, mime: str) -> None:  # type: ignore[no-untyped-def]
    tampered = _flip_in_image_data(signed[mime][1], mime)
    summary = read_c2pa(tampered, trust_anchors=pki.root_pem)
    assert (summary.status, summary.validation_state) == ("present", "Invalid")
    assert "assertion.dataHash.mismatch" in summary.failure_codes


def test_signing_a_signed_image_keeps_its_manifest_as_ingredient(c2pa_data: Path, pki: TestPki) -> None:
    original = (c2pa_data / "C.jpg").read_bytes()
    copy = sign_with_soft_binding(
        original, "image/jpeg", **BINDING, record_cid=RECORD_CID, title=None, signer=pki.config()
    )
    before, after = read_c2pa(original), read_c2pa(copy, trust_anchors=pki.root_pem)
    assert after.validation_state == "Trusted" and after.active_manifest != before.active_manifest
    assert [(i.relationship, i.format) for i in after.ingredients] == [("parentOf", "image/jpeg")]
    # C.jpg's untrusted test signer was recorded in the ingredient when signing; no new failure since.
    assert after.ingredient_failure_codes == ()
    store = manifest_store_json(copy)
    assert store is not None and before.active_manifest in store["manifests"]
    assert after.title is None


# --- refusals ---------------------------------------------------------------------------------------------------------
def test_unsupported_media_is_refused(pki: TestPki, shared_photos: Path) -> None:
    jpeg = (shared_photos / PHOTOS["image/jpeg"]).read_bytes()
    with pytest.raises(C2paUnsupportedMediaError, match="image/bmp"):
        sign_with_soft_binding(jpeg, "image/bmp", **BINDING, record_cid=RECORD_CID, title=None, signer=pki.config())
    with pytest.raises(C2paUnsupportedMediaError, match="are image/jpeg, not image/png") as info:
        sign_with_soft_binding(jpeg, "image/png", **BINDING, record_cid=RECORD_CID, title=None, signer=pki.config())
    assert isinstance(info.value, InvalidImageError)
    with pytest.raises(C2paUnsupportedMediaError, match="not an image"):
        sign_with_soft_binding(b"text", "image/png", **BINDING, record_cid=RECORD_CID, title=None, signer=pki.config())


def test_truncated_image_is_refused_by_c2pa(pki: TestPki, shared_photos: Path) -> None:
    jpeg = (shared_photos / PHOTOS["image/jpeg"]).read_bytes()
    with pytest.raises(C2paSigningError, match="c2pa refused to sign the image/jpeg image"):
        sign_with_soft_binding(
            jpeg[:300], "image/jpeg", **BINDING, record_cid=RECORD_CID, title=None, signer=pki.config()
        )


def test_empty_binding_is_refused(pki: TestPki, shared_photos: Path) -> None:
    jpeg = (shared_photos / PHOTOS["image/jpeg"]).read_bytes()
    with pytest.raises(ValueError, match="binding_value"):
        sign_with_soft_binding(
            jpeg,
            "image/jpeg",
            binding_alg="a",
            binding_value="",
            model_id="m",
            record_cid=RECORD_CID,
            title=None,
            signer=pki.config(),
        )


def test_missing_files(tmp_path: Path, pki: TestPki) -> None:
    files = pki.write(tmp_path)
    with pytest.raises(C2paConfigError, match="certificate chain not found: .*nope.pem"):
        C2paSigningConfig.from_files(tmp_path / "nope.pem", files["key"])
    with pytest.raises(C2paConfigError, match="signing key not found"):
        C2paSigningConfig.from_files(files["chain"], tmp_path / "nope.key")
    with pytest.raises(C2paConfigError, match="trust anchors not found"):
        load_trust_anchors(tmp_path / "anchors-missing.pem")
    with pytest.raises(C2paConfigError, match="PROVENANCE_C2PA_SIGNING_KEY is not set") as info:
        C2paSigningConfig.from_settings(Settings(data_dir=tmp_path, c2pa_signing_cert=files["chain"]))
    assert isinstance(info.value, ConfigError)


def test_key_not_matching_cert(pki: TestPki) -> None:
    stranger = pem_of_key(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(C2paConfigError, match="key does not match the signing certificate .*Acme C2PA signer"):
        C2paSigningConfig(pki.chain_pem, stranger)


def test_chain_not_leaf_first(pki: TestPki) -> None:
    reversed_chain = pem_of_cert(pki.intermediate) + pem_of_cert(pki.leaf)
    with pytest.raises(C2paConfigError, match="key belongs to certificate 2 .*must be leaf first"):
        C2paSigningConfig(reversed_chain, pki.key_pem)
    foreign = pem_of_cert(pki.leaf) + pem_of_cert(make_pki().intermediate)
    with pytest.raises(C2paConfigError, match="broken or out of order: certificate 1 .* not issued by certificate 2"):
        C2paSigningConfig(foreign, pki.key_pem)


def test_not_pem(pki: TestPki, tmp_path: Path) -> None:
    with pytest.raises(C2paConfigError, match="chain is not PEM certificates"):
        C2paSigningConfig(b"garbage", pki.key_pem)
    with pytest.raises(C2paConfigError, match="not a PEM private key"):
        C2paSigningConfig(pki.chain_pem, b"garbage")
    with pytest.raises(C2paConfigError, match="unencrypted"):
        C2paSigningConfig(pki.chain_pem, pem_of_key(pki.leaf_key, b"secret"))
    (tmp_path / "anchors.pem").write_text("not a certificate")
    with pytest.raises(C2paConfigError, match="not a PEM certificate bundle"):
        load_trust_anchors(tmp_path / "anchors.pem")


def test_algorithm_must_fit_the_key(pki: TestPki) -> None:
    with pytest.raises(C2paConfigError, match="ps256 needs an RSA key, not"):
        C2paSigningConfig(pki.chain_pem, pki.key_pem, "ps256")
    with pytest.raises(C2paConfigError, match="es384 needs an EC secp384r1 key"):
        C2paSigningConfig(pki.chain_pem, pki.key_pem, "es384")
    with pytest.raises(C2paConfigError, match="unknown C2PA signing algorithm 'rs256'"):
        C2paSigningConfig(pki.chain_pem, pki.key_pem, "rs256")
    assert C2paSigningConfig(pki.chain_pem, pki.key_pem, "ES256").alg == "es256"
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(C2paConfigError, match="es256 needs an EC secp256r1 key, not .*RSA"):
        C2paSigningConfig(pki.chain_pem, pem_of_key(rsa_key))


def test_expired_signing_certificate(pki: TestPki) -> None:
    old = make_pki(leaf_not_after=datetime.now(timezone.utc) - timedelta(days=1))
    with pytest.raises(C2paConfigError, match="signing certificate expired on"):
        C2paSigningConfig(old.chain_pem, old.key_pem)


def test_c2pa_refusal_of_a_certificate_is_a_signing_error(pki: TestPki, shared_photos: Path) -> None:
    """A leaf that is a CA certificate passes our checks but not c2pa's certificate profile."""
    key = ec.generate_private_key(ec.SECP256R1())
    ca_leaf = issue("Not a signer", "Acme", key, pki.intermediate, pki.intermediate_key, ca=True)
    config = TestPki(pki.root, pki.intermediate, pki.intermediate_key, ca_leaf, key).config()
    jpeg = (shared_photos / PHOTOS["image/jpeg"]).read_bytes()
    with pytest.raises(C2paSigningError, match="c2pa refused"):
        sign_with_soft_binding(jpeg, "image/jpeg", **BINDING, record_cid=RECORD_CID, title=None, signer=config)


def test_signing_config_hides_the_key(pki: TestPki) -> None:
    assert "PRIVATE KEY" not in repr(pki.config())


def _sign_in_child(image: bytes, config: C2paSigningConfig) -> str | None:
    copy = sign_with_soft_binding(image, "image/png", **BINDING, record_cid=RECORD_CID, title=None, signer=config)
    return read_c2pa(copy).validation_state


def test_signing_works_in_a_forked_worker(signed, pki: TestPki) -> None:  # type: ignore[no-untyped-def]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    original = signed["image/png"][0]  # the module fixture has signed in this process already
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
        assert pool.submit(_sign_in_child, original, pki.config()).result(timeout=60) == "Valid"
