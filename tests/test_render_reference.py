"""Acceptance: ``kslab render --as-is --format restore`` reproduces the upstream expected dumps
in tests/data/kube-proxy exactly, once the mark is written as the tests write it (0x4000)."""

from __future__ import annotations

import difflib
import subprocess
import sys
from pathlib import Path

import pytest
from render_cases import UPSTREAM

REPO = Path(__file__).resolve().parents[1]
CASES = {
    "overall-rules": "overall-rules.expected.txt",
    "sync-repeated-first": "sync-repeated-first.expected.txt",
}
FLAGS = ["--as-is", "--node", "test-node", "--node-ip", "192.168.0.2", "--cluster-cidr", "10.0.0.0/8",
         "--no-random-fully", "--format", "restore"]


@pytest.mark.parametrize("case", CASES)
def test_cli_render_equals_upstream_dump(case):
    expected_file = UPSTREAM / CASES[case]
    expected = "".join(line for line in expected_file.read_text().splitlines(keepends=True) if not line.startswith("#"))
    r = subprocess.run([sys.executable, "-m", "kslab.cli", "render", "-f", str(REPO / "tests" / "data" / "kube-proxy" / f"{case}.yaml"),
                        *FLAGS], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert "0x00004000" in r.stdout  # a real kube-proxy's mark (Go %#08x) ...
    got = r.stdout.replace("0x00004000", "0x4000")  # ... written as the unit tests write it
    assert got == expected, "".join(difflib.unified_diff(expected.splitlines(True), got.splitlines(True), "upstream", "kslab"))
