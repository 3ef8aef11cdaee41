"""Inception-v3 against torchvision and the paper (Szegedy et al. 2015, "Rethinking the Inception Architecture")."""

import pytest
import torch
import torchvision
from archtest import assert_same_as_reference, assert_static_shapes, count_params, graph_breaks, input_for, spec
from torch.utils.flop_counter import FlopCounterMode

VARIANTS = ["inception_v3"]
WITH_AUX = 27_161_264  # torchvision's num_params (aux head built by default)
WITHOUT_AUX = 23_834_568


def reference(aux_logits=True):
    # init_weights=False: default PyTorch init, not the slow truncated normal; the weights are copied anyway.
    return torchvision.models.inception_v3(weights=None, aux_logits=aux_logits, init_weights=False)


def test_counts():
    s = spec("inception_v3")
    graph = s.graph("inception_v3")
    assert graph.params == WITH_AUX
    assert graph.params_without_sides() == WITHOUT_AUX
    assert s.graph("inception_v3", aux_logits=False).params == WITHOUT_AUX
    # "less than 25 million parameters": the paper's figure leaves out the auxiliary classifier
    assert WITHOUT_AUX < 25_000_000 < WITH_AUX


def test_macs_match_torchvision_without_aux_head():
    # torchvision's "_ops": 5.713 G, measured in eval mode, where the auxiliary head does not run.
    # With the head (a 768 -> 128 -> 768 5x5 conv stack and an fc) it would be 5.719 G.
    s = spec("inception_v3")
    plain = s.graph("inception_v3", aux_logits=False).macs
    with_aux = s.graph("inception_v3").macs
    assert plain == sum(op.macs for op in s.graph("inception_v3").ops() if op.side is None)
    assert abs(plain / 5.713e9 - 1) < 0.005
    assert round(plain / 1e9, 3) == 5.713
    assert round(with_aux / 1e9, 3) == 5.719
    # the paper's "5 billion multiply-adds" at 299x299
    assert 5e9 < plain < 6e9


def test_macs_match_a_flop_counter_on_torchvision():
    # Counted on the meta device (shapes only, no arithmetic): torchvision's 5.713 G is its eval-mode
    # count; in training mode the auxiliary head runs too and the count is our graph's with the head.
    graph = spec("inception_v3").graph("inception_v3")
    model = reference().to("meta")
    for mode, expected in [("eval", sum(op.macs for op in graph.ops() if op.side is None)), ("train", graph.macs)]:
        getattr(model, mode)()
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(torch.randn(2, 3, 299, 299, device="meta"))
        assert counter.get_total_flops() // 4 == expected  # 2 flops per multiply-add, batch of 2


def test_matches_torchvision_eval():
    s = spec("inception_v3")
    model = s.build("inception_v3")
    ref = reference()
    assert count_params(model) == count_params(ref) == WITH_AUX
    assert_same_as_reference(model, ref, input_for(s, "inception_v3"))


@pytest.mark.slow  # a second pair of Inception-v3s
def test_aux_output_matches_torchvision_in_training():
    s = spec("inception_v3")
    model = s.build("inception_v3")
    ref = reference()
    model.load_state_dict(ref.state_dict(), strict=True)
    model.train()
    ref.train()
    x = input_for(s, "inception_v3")
    torch.manual_seed(0)
    logits, aux = model(x)
    torch.manual_seed(0)
    expected = ref(x)
    assert aux.shape == (2, 1000)
    assert (aux - expected.aux_logits).abs().max().item() < 1e-5
    assert (logits - expected.logits).abs().max().item() < 1e-5  # same dropout mask


@pytest.mark.slow  # a second pair of Inception-v3s
def test_without_aux_logits():
    s = spec("inception_v3")
    model = s.build("inception_v3", aux_logits=False)
    assert model.AuxLogits is None
    assert count_params(model) == WITHOUT_AUX
    x = input_for(s, "inception_v3")
    assert_same_as_reference(model, reference(aux_logits=False), x)
    model.train()
    with torch.no_grad():
        assert model(x).shape == (2, 1000)  # no side output to return


def test_num_classes():
    model = spec("inception_v3").build("inception_v3", num_classes=10)
    assert model.fc.out_features == 10 and model.AuxLogits.fc.out_features == 10


def test_layout_follows_the_paper():
    modules = spec("inception_v3").graph("inception_v3").modules()
    # Figure 6: the 17x17 modules factorise 7x7 into 1x7 and 7x1
    assert modules["Mixed_6b.branch7x7_2.conv"].args["kernel_size"] == (1, 7)
    assert modules["Mixed_6b.branch7x7_3.conv"].args["kernel_size"] == (7, 1)
    # Figure 7: the 8x8 modules split a 3x3's output into a 1x3 and a 3x1 side by side
    assert modules["Mixed_7b.branch3x3_2a.conv"].in_shapes == modules["Mixed_7b.branch3x3_2b.conv"].in_shapes
    assert modules["Mixed_7b.branch3x3_2a.conv"].args["kernel_size"] == (1, 3)
    assert modules["Mixed_7b.branch3x3_2b.conv"].args["kernel_size"] == (3, 1)
    # Table 1's grids: 35x35x288 -> 17x17x768 -> 8x8x2048
    assert modules["Mixed_6a.branch3x3.conv"].in_shapes[0] == (288, 35, 35)
    assert modules["Mixed_7a.branch3x3_1.conv"].in_shapes[0] == (768, 17, 17)
    assert modules["avgpool"].in_shapes[0] == (2048, 8, 8)


@pytest.mark.slow  # a dynamo trace
@pytest.mark.parametrize("variant", VARIANTS)
def test_static_shapes_and_graph_breaks(variant):
    s = spec("inception_v3")
    model = s.build(variant)
    x = input_for(s, variant)
    assert_static_shapes(s, variant, model, x)
    assert graph_breaks(model.eval(), x) == 0
    assert graph_breaks(model.train(), x) == 0
