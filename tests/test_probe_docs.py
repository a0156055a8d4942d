"""The probe contract example in docs/plugins.md is a working cell the probe reads through its contract."""

import re
import sys
from pathlib import Path

import numpy as np

from rnnchat.engine.model import CharRNN, ModelConfig
from rnnchat.engine.probe import Probe
from rnnchat.testing import check_cell, check_probe

DOCS = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"


def test_the_documented_gated_cell_passes_check_probe_and_shows_its_gate(tmp_path, monkeypatch):
    text = DOCS.read_text(encoding="utf-8")
    code = re.search(r"<!-- example-module: rnnchat_gated_cells -->\n```python\n(.*?)```", text, re.S).group(1)
    (tmp_path / "rnnchat_gated_cells.py").write_text(code, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("rnnchat_gated_cells", None)
    from rnnchat_gated_cells import GatedCell

    check_cell(GatedCell, only=["state", "forward_matches_step"])
    assert check_probe(GatedCell) == {"h": "state", "a": "gate", "n": "value"}
    model = CharRNN(ModelConfig(cell="gated", vocab_size=7, hidden=8, layers=1, embedding=4), cell_class=GatedCell)
    probe = Probe(model.eval())
    assert [(q.name, q.kind, q.how) for q in probe.quantities()] == \
        [("h", "state", "contract"), ("a", "gate", "contract"), ("n", "value", "contract")]
    acts, _ = probe.activations([1, 2, 3, 4])
    h, a, n = acts[(1, "h")], acts[(1, "a")], acts[(1, "n")]
    assert np.allclose(h[1:], (1 - a[1:]) * h[:-1] + a[1:] * n[1:], atol=1e-6)
    sys.modules.pop("rnnchat_gated_cells", None)
