"""lookup(..., persistent = false): its index table a buffer that is no state_dict key (timm's relative position
indices), generated and interpreted; the values are those of the default, persistent table."""

import pytest
import torch
from test_indexing_ops import SPEC, WORKS
from test_soundness import check_runs

import archc
from archc.ops.indexing import index_table

KEPT = "lookup(1, (2, 2), (2, -1), 1, (2, 2))"
NOT_KEPT = "lookup(1, (2, 2), (2, -1), 1, (2, 2), persistent = false)"


def _spec(tmp_path, index: str, name: str):
    path = tmp_path / f"{name}.arch"
    path.write_text(SPEC.format(expr=WORKS).replace(KEPT, index))
    return archc.load(path)


def test_a_table_that_is_not_persistent_is_no_state_dict_key_and_the_same_numbers(tmp_path):
    kept, not_kept = _spec(tmp_path, KEPT, "kept"), _spec(tmp_path, NOT_KEPT, "not_kept")
    assert "persistent=False" in not_kept.source() and "persistent" not in kept.source()
    torch.manual_seed(0)
    a = kept.python_module().n().eval()
    with torch.no_grad():
        a.b.table.copy_(torch.randn(4, 4))  # (rows that differ, so that picking other rows gives other numbers)
    torch.manual_seed(0)
    b = not_kept.python_module().n().eval()
    assert "b.index" in a.state_dict() and "b.index" not in b.state_dict()
    assert torch.equal(a.b.index, b.b.index)  # still a buffer, of the same table
    assert [n for n, _ in b.named_buffers()] == ["b.index"]
    b.load_state_dict({k: v for k, v in a.state_dict().items() if k != "b.index"}, strict=True)
    x = torch.randn(2, 4, 6, 6)
    assert torch.equal(a(x), b(x))
    interp = not_kept.interpret("n")
    assert "b.index" not in interp.state_dict() and any(n.endswith("index") for n, _ in interp.named_buffers())
    interp.load_state_dict(b.state_dict(), strict=True)
    assert torch.allclose(interp(x), b(x), atol=1e-6)
    # a wrong table (other rows picked) gives other numbers: the comparison can fail
    c = _spec(tmp_path, NOT_KEPT.replace("(2, -1)", "(1, 1)"), "wrong").python_module().n().eval()
    c.load_state_dict(b.state_dict(), strict=True)
    assert not torch.equal(c(x), b(x))


def test_a_table_that_is_not_persistent_runs_as_the_interpreter_says(tmp_path):
    assert check_runs(SPEC.format(expr=WORKS).replace(KEPT, NOT_KEPT), tmp_path)


LEVIT = "lookup(1, (2, 2), (0, 0), absolute = ((1, -1),), persistent = false)"  # |i - j| over a 2 x 2 grid


def test_absolute_terms_give_levit_distances_generated_and_interpreted(tmp_path):
    text = SPEC.format(expr=WORKS).replace(KEPT, LEVIT)
    assert check_runs(text, tmp_path)
    model = _spec(tmp_path, LEVIT, "levit").python_module().n()
    assert model.b.index.tolist() == [0, 1, 1, 0] and "b.index" not in model.state_dict()
    pos = torch.arange(4).view(2, 2)  # LeViT's: |dy| * w + |dx| on a 2 x 2 grid
    rows, cols = pos // 2, pos % 2
    levit = ((rows.flatten()[:, None] - rows.flatten()[None]).abs() * 2 +
             (cols.flatten()[:, None] - cols.flatten()[None]).abs())
    f = {"sizes": (2, 2, 2, 2), "steps": (0, 0, 0, 0), "offset": 0, "absolute": ((2, 0, -2, 0), (0, 1, 0, -1))}
    assert torch.equal(index_table(**f).view(4, 4), levit)


def test_absolute_terms_beyond_the_dimension_are_a_located_error(tmp_path):
    path = tmp_path / "n.arch"
    path.write_text(SPEC.format(expr=WORKS).replace(KEPT, "lookup(1, (2, 2), (0, 0), 1, absolute = ((3, -3),))"))
    with pytest.raises(archc.SpecError) as info:
        archc.load(path).graph("n")
    assert info.value.span.line == 3 and "entries run from 1 to 4, outside dim 1 of size 4" in info.value.message
