"""The paper's ablations: streams can be dropped; each variant is its own model with its own id."""

from __future__ import annotations

import pytest
import torch

from hasher.api import OSCAR_VARIANTS, load
from hasher.config import OscarConfig
from hasher.errors import ConfigError
from hasher.model import OscarNet
from hasher.scene_graph import collate
from tests.hasher.test_model import TINY, _graph


@pytest.mark.parametrize("streams", [("global",), ("global", "objects"), ("objects", "relations"), ("relations",)])
def test_any_subset_of_streams_gives_a_code(streams) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = OscarNet(TINY.replace(streams=streams), pretrained_backbone=False).eval()
    with torch.no_grad():
        out = model(collate([_graph(0, 1), _graph(3, 2)]))
    assert out.z.shape == (2, 64)


def test_dropped_streams_are_not_read() -> None:
    """With only the global stream, the object inputs cannot change the code."""
    torch.manual_seed(0)
    model = OscarNet(TINY.replace(streams=("global",)), pretrained_backbone=False).eval()
    a, b = _graph(3, 5), _graph(3, 6)
    b_with_a_image = collate([b])
    b_with_a_image.images.copy_(collate([a]).images)
    with torch.no_grad():
        assert torch.equal(model(collate([a])).z, model(b_with_a_image).z)


def test_bad_streams_are_refused() -> None:
    for bad in [(), ("global", "global"), ("colour",)]:
        with pytest.raises(ConfigError, match="streams"):
            OscarConfig(streams=bad)


def test_variants_have_distinct_honest_ids() -> None:
    ids = {v: load(device="cpu", variant=v).model_id for v in OSCAR_VARIANTS}
    ids["full"] = load("untrained", device="cpu").model_id
    assert len(set(ids.values())) == 4 and all(i.startswith("oscar-untrained-") for i in ids.values())
    assert load(device="cpu").model_id.startswith("oscar-v1-")  # the default is the shipped, trained model
    with pytest.raises(ConfigError, match="unknown variant"):
        load(device="cpu", variant="no-such")


def test_cnn_only_never_runs_the_detector() -> None:
    hasher = load(device="cpu", variant="cnn-only")

    class Boom:
        model_id = "boom"

        def detect(self, *a, **k):  # type: ignore[no-untyped-def]
            raise AssertionError("detector called")

    hasher.detector = Boom()  # type: ignore[assignment]
    import numpy as np

    assert len(hasher.hash(np.zeros((32, 32, 3), dtype=np.uint8)).hex) == 16
