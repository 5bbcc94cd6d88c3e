"""The committed contract artifact is exactly what the pinned compiler makes of the committed source."""

from __future__ import annotations

import json
import shutil
import subprocess

from tests.fixtures.services import NODE_TOOLS, ROOT, unavailable

SCRIPT = ROOT / "scripts" / "check-contract-artifact.sh"
ARTIFACT = ROOT / "contracts" / "build" / "ProvenanceAnchor.json"


def test_committed_artifact_matches_a_fresh_compile() -> None:
    if not (NODE_TOOLS / "solc" / "package.json").is_file():
        unavailable(f"solc not installed in {NODE_TOOLS} (run: npm ci --prefix tools/node)")
    if shutil.which("node") is None:
        unavailable("node not on PATH")
    proc = subprocess.run([str(SCRIPT)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_artifact_pins_compiler_and_evm_version() -> None:
    """Readable without Node: the settings that make the bytecode run on ganache 7.9.2 and py-evm."""
    artifact = json.loads(ARTIFACT.read_text())
    assert artifact["compiler"]["version"].startswith("0.8.37+")
    assert artifact["settings"]["evmVersion"] == "paris"
    assert artifact["settings"]["optimizer"] == {"enabled": True, "runs": 200}
    assert artifact["bytecode"].startswith("0x") and artifact["deployedBytecode"].startswith("0x")
    assert ARTIFACT.read_text().endswith("}\n")
