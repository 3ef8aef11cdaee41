"""The structured statements lowered to dataflow (``archc/lang/dataflow_sugar.py``): a residual, a gate, a concat
and a dense block compute what their hand-written equivalents in blocks with named tensors compute, with the
same state_dict keys; the graph the lowering gives is checked by the interpreter, and a lowering that drops the
residual's sum or the gate's product, or joins a concat's or dense's tensors in another order, fails the
comparison, as does an arranged dense whose members read the list they grow in another order."""

from __future__ import annotations

import copy

import pytest
import torch

import archc
from archc.lang import dataflow_sugar
from archc.lang import nodes as n
from archc.lang.parser import parse

SPEC = """
block Res(c, stride = 1) {
    residual(scale = 0.5) {
        bn1 = batchnorm; pre = relu
        conv1 = conv(c, 3, stride, padding = 1, bias = false)
    } shortcut from pre if stride != 1 {
        down = conv(c, 1, stride, bias = false)
    }
    relu
}

block ResFlow(c, stride = 1) (x) -> y {
    bn1 = batchnorm
    conv1 = conv(c, 3, stride, padding = 1, bias = false)
    down = conv(c, 1, stride, bias = false) if stride != 1
    let pre = relu(bn1(x))
    let body = conv1(pre)
    let skip = down(pre) if stride != 1 else x
    let y = relu(body * 0.5 + skip)
}

block SE(c) {
    gate { adaptive_avgpool(1); fc1 = conv(c // 2, 1); relu; fc2 = conv(c, 1); sigmoid }
}

block SEFlow(c) (x) -> y {
    fc1 = conv(c // 2, 1)
    fc2 = conv(c, 1)
    let scale = sigmoid(fc2(relu(fc1(adaptive_avgpool(x, 1)))))
    let y = scale * x
}

block Inception(c) {
    concat { b1 = conv(c, 1); b2 = seq { conv(c, 1); relu; conv(c, 3, padding = 1) }; identity }
}

block InceptionFlow(c) (x) -> y {
    b1 = conv(c, 1)
    b2 = seq { conv(c, 1); relu; conv(c, 3, padding = 1) }
    let y = cat([b1(x), b2(x), x], 1)
}

block Arranged(c, n) {
    concat { b1 = conv(c, 1); for i in range(n) { bs.{i} = conv(c, 3, padding = 1) }; b9 = conv(c, 1) if n > 5 }
}

block ArrangedFlow(c, n) (x) -> y {
    b1 = conv(c, 1)
    let outs = [b1(x)]
    for i in range(n) {
        bs.{i} = conv(c, 3, padding = 1)
        let outs = outs + [bs[i](x)]
    }
    let y = cat(outs, 1)
}

block Dense(g) {
    dense { l1 = seq { batchnorm; relu; conv(g, 3, padding = 1) }; l2 = conv(g, 3, padding = 1) }
}

block DenseFlow(g) (x) -> y {
    l1 = seq { batchnorm; relu; conv(g, 3, padding = 1) }
    l2 = conv(g, 3, padding = 1)
    let f1 = l1(x)
    let f2 = l2(cat([x, f1], 1))
    let y = cat([x, f1, f2], 1)
}

block Grown(g, n) {
    dense { for i in range(n) { ls.{i} = seq { batchnorm; relu; conv(g, 3, padding = 1) } }; last = conv(g, 1) }
}

block GrownFlow(g, n) (x) -> y {
    let feats = [x]
    for i in range(n) {
        ls.{i} = seq { batchnorm; relu; conv(g, 3, padding = 1) }
        let feats = feats + [ls[i](cat(feats, 1))]
    }
    last = conv(g, 1)
    let grown = feats + [last(cat(feats, 1))]
    let y = cat(grown, 1)
}

network Net(res, se, inception, arranged, densely, grown, num_classes = 10) {
    input 3 x 16 x 16
    stem = conv(8, 3, padding = 1)
    r1 = res(8)
    r2 = res(8, stride = 2)
    gate = se(8)
    branches = inception(4)
    listed = arranged(4, 3)
    features = densely(4)
    grows = grown(2, 3)
    pool = adaptive_avgpool(1)
    flatten
    fc = linear(num_classes)
}

variant sugar = Net(Res, SE, Inception, Arranged, Dense, Grown)
variant flow = Net(ResFlow, SEFlow, InceptionFlow, ArrangedFlow, DenseFlow, GrownFlow)
"""


def _compare(tmp_path) -> tuple[torch.Tensor, torch.Tensor]:
    """The hand-written dataflow model, its state randomised, and the interpreter of the structured statements'
    graph holding the same state (loaded strictly: the same keys), on one input."""
    path = tmp_path / "sugar.arch"
    path.write_text(SPEC)
    spec = archc.load(path)
    torch.manual_seed(0)
    flow = spec.build("flow").double()
    with torch.no_grad():
        for key, t in flow.state_dict().items():
            if key.endswith(("running_mean", "running_var", "weight", "bias")):
                t.copy_(torch.rand_like(t) + 0.5)
    interp = spec.interpret("sugar").double()
    interp.load_state_dict(flow.state_dict(), strict=True)
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        return interp.eval()(x), flow.eval()(x)


@pytest.mark.slow
def test_each_form_computes_its_dataflow_equivalent_with_the_same_keys(tmp_path):
    path = tmp_path / "sugar.arch"
    path.write_text(SPEC)
    spec = archc.load(path)
    sugar, flow = spec.build("sugar"), spec.build("flow")
    source = spec.source()  # each form's forward, written from its steps
    for line in ["identity = x", "pre = self.pre(out)", "identity = self.down(pre)", "out = out * 0.5 + identity",
                 "x = scale * x", "x = torch.cat([b1, b2, x], 1)", "branches = []", "x = torch.cat(branches, 1)",
                 "l1 = self.l1(x)",
                 "l2 = self.l2(torch.cat([x, l1], 1))", "x = torch.cat([x, l1, l2], 1)",
                 "features = [x]", "new_features = self.ls[i](torch.cat(features, 1))", "x = torch.cat(features, 1)"]:
        assert line in source, line
    # the same keys (in another order only where __init__ registers a container before the layers written
    # before it: the arranged concat's bs, a ModuleList made first and filled in the spec's order; the grown
    # dense's ls is written first)
    assert sorted(sugar.state_dict()) == sorted(flow.state_dict())
    assert [k for k in sugar.state_dict() if not k.startswith("listed.")] == \
        [k for k in flow.state_dict() if not k.startswith("listed.")]
    ours, theirs = _compare(tmp_path)
    assert torch.allclose(ours, theirs, rtol=1e-9, atol=1e-12)
    flow.load_state_dict(copy.deepcopy(sugar.state_dict()), strict=True)  # and the generated models agree
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(sugar.eval()(x), flow.eval()(x), atol=1e-6)


@pytest.mark.slow
def test_a_lowering_that_drops_a_join_fails_the_comparison(tmp_path, monkeypatch):
    residual = dataflow_sugar._LOWERINGS[n.Residual]

    def no_sum(stmt):  # the body alone: the shortcut's tensor is never added
        steps = residual(stmt).steps
        return dataflow_sugar.Sugar(steps, "out%")

    def swapped(lower):  # the join's first two tensors in the other order (the same widths here)
        def mutated(stmt):
            *steps, last = lower(stmt).steps
            if len(last.srcs) < 2:  # (a list the arrangement fills: left as it is)
                return lower(stmt)
            srcs = (last.srcs[1], last.srcs[0], *last.srcs[2:])
            return dataflow_sugar.Sugar((*steps, dataflow_sugar.join(last.dest, srcs, stmt, last.op)), last.dest)
        return mutated

    for form, mutated in [(n.Residual, no_sum),
                          (n.Gate, lambda stmt: dataflow_sugar.Sugar(dataflow_sugar._gate(stmt).steps, "scale%")),
                          (n.Concat, swapped(dataflow_sugar._concat)), (n.Dense, swapped(dataflow_sugar._dense))]:
        with monkeypatch.context() as m:
            m.setitem(dataflow_sugar._LOWERINGS, form, mutated)
            m.setattr(dataflow_sugar, "_LOWERED", dataflow_sugar.weakref.WeakKeyDictionary())
            ours, theirs = _compare(tmp_path)
            assert not torch.allclose(ours, theirs, rtol=1e-3), form


@pytest.mark.slow
def test_a_grown_list_read_in_another_order_fails_the_comparison(tmp_path, monkeypatch):
    """The arranged dense's "grow" step with each member reading the list so far in reverse (the same widths):
    the comparison with the hand-written loop-grown list fails."""
    from archc.sema.elabstruct import StructureElaboration

    member_input = StructureElaboration.member_input

    def reversed_input(self, member, frame, features):
        return member_input(self, member, frame, features[::-1])

    monkeypatch.setattr(StructureElaboration, "member_input", reversed_input)
    ours, theirs = _compare(tmp_path)
    assert not torch.allclose(ours, theirs, rtol=1e-3)


def test_which_statements_are_lowered():
    body = parse("""
block B(c) {
    concat { a = conv(c, 1); for i in range(2) { conv(c, 1) } }
    concat { a2 = conv(c, 1); b2 = conv(c, 1) }
    dense { for i in range(2) { l{i} = conv(c, 3, padding = 1) } }
    dense { m1 = conv(c, 3, padding = 1) }
}
""").blocks[0].body
    assert [dataflow_sugar.lowered(s) is not None for s in body] == [True, True, True, True]
    assert [s.kind for s in dataflow_sugar.lowered(body[0]).steps] == ["each", "join"]  # a list the loop fills
    assert [s.kind for s in dataflow_sugar.lowered(body[1]).steps] == ["run", "run", "join"]
    assert [s.kind for s in dataflow_sugar.lowered(body[2]).steps] == ["grow", "join"]  # a list the loop grows
    assert [s.kind for s in dataflow_sugar.lowered(body[3]).steps] == ["run", "join"]


def test_an_init_rule_among_branches_or_members_is_neither(tmp_path):
    """An init rule between a concat's branches is kept, as forward keeps it, and adds no branch (it added the
    input once, so the graph was 8 channels wider than the model); between a dense's members alike."""
    path = tmp_path / "init.arch"
    path.write_text("""
network N() {
    input 8 x 8 x 8
    concat { a = conv(4, 1); init a.weight = 0; b = conv(4, 1) }
    dense { c = conv(4, 1); init c.weight = 0.5; d = conv(4, 1) }
}
variant n = N()
""")
    spec = archc.load(path)
    graph = spec.graph("n")
    model = spec.build("n")
    assert graph.node(graph.output).shape == (16, 8, 8) == tuple(model(torch.randn(1, 8, 8, 8)).shape[1:])
    assert not model.a.weight.any() and bool((model.c.weight == 0.5).all())
