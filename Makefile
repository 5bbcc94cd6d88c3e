# The two set-up commands of the README:
#   make demo   install everything, then run the main job on the embedded default (no services needed)
#   make test   install everything, then run the test suite
DEMO_PHOTOS ?=
DEMO_DATA ?= .provenance-demo

.PHONY: install demo test bench

install:
	./scripts/install.sh

demo: install
	.venv/bin/provenance --data-dir $(DEMO_DATA) demo $(if $(DEMO_PHOTOS),--photos $(DEMO_PHOTOS))

test: install
	.venv/bin/python -m pytest

bench: install
	.venv/bin/python benchmarks/bench_translog.py
	.venv/bin/python benchmarks/bench_anchor.py
	.venv/bin/python benchmarks/bench_ipfs.py
	.venv/bin/python benchmarks/bench_ingest.py
	.venv/bin/python benchmarks/hash_throughput.py
	.venv/bin/python benchmarks/detector_latency.py
	.venv/bin/python benchmarks/bench_index.py
	.venv/bin/python benchmarks/bench_geometry.py
	.venv/bin/python benchmarks/bench_object_changes.py
	.venv/bin/python benchmarks/bench_global_id_index.py
	.venv/bin/python benchmarks/bench_ingest_queue.py
	.venv/bin/python benchmarks/bench_api_load.py
	.venv/bin/python benchmarks/bench_tiles.py --leaves 100000 1000000
	.venv/bin/python benchmarks/bench_federated.py
# The hasher and system benchmarks need the datasets of hasher/weights/MODEL_CARD.md (benchmarks/out/train-data):
#   provenance bench attribution --dataset benchmarks/out/train-data/test --methods all ...
#   .venv/bin/python benchmarks/bench_channels.py --dataset benchmarks/out/train-data/test
#   .venv/bin/python benchmarks/bench_softbinding_calibration.py --results docs/softbinding-benchmark-results.json
#   .venv/bin/python benchmarks/attribution_system.py --dataset benchmarks/out/train-data/test \
#       --unrelated benchmarks/out/train-data/val/references
