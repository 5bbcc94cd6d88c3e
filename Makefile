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
