"""NFNet (Brock et al. 2021): specs/nfnet.arch against timm's nfnet_f0 to nfnet_f7: convs with scaled weight
standardisation (the ws_conv op), beta and alpha around every residual branch, GELU's gamma in the convs' scale;
and against timm's dm_nfnet_f0 to dm_nfnet_f6, DeepMind's form: gamma in the activations, TensorFlow's "same"
padding (conv padding = "same": uneven where a stride-2 conv meets an even size) and SkipInit's scalar.

Every variant is held to timm's parameter count and state_dict keys on the meta device. Outputs and initial
tensors are compared on a narrow, shallow configuration of the same network (timm builds it from nfnet_f0's or
dm_nfnet_f0's configuration with the same overrides), which exercises every kind of block in a second; nfnet_f0 and
dm_nfnet_f0 themselves are compared in the slow tier (every dm_nfnet but f0 is over 100 M parameters)."""

import re

import pytest
import timm
import torch
import zoo
from archtest import SPECS, assert_static_shapes, count_params, fast_tier, graph_breaks, spec
from timmzoo import assert_counts_and_keys, image, reference, starts_as_timm

import archc

VARIANTS = [f"nfnet_f{i}" for i in range(8)] + [f"dm_nfnet_f{i}" for i in range(7)]
PARAMS = {"nfnet_f0": 71_489_272, "nfnet_f1": 132_634_232, "nfnet_f2": 193_779_192, "nfnet_f3": 254_924_152,
          "nfnet_f4": 316_069_112, "nfnet_f5": 377_214_072, "nfnet_f6": 438_359_032, "nfnet_f7": 499_503_992,
          # a scalar a block more (SkipInit's)
          "dm_nfnet_f0": 71_489_284, "dm_nfnet_f1": 132_634_256, "dm_nfnet_f2": 193_779_228,
          "dm_nfnet_f3": 254_924_200, "dm_nfnet_f4": 316_069_172, "dm_nfnet_f5": 377_214_144,
          "dm_nfnet_f6": 438_359_116}
# nfnet_f0's network, narrow and shallow: every stage has a transition block, two have a plain block after it
TINY = {"depths": [1, 2, 2, 1], "channels": [32, 64, 96, 96], "stem_chs": 16, "group_size": 16}
SIZE = 64
DM = {"gamma_in_act": True, "same_padding": True, "skipinit": True}  # dm_nfnet's switches, as timm's NfCfg names them


def draw(name, tensor, generator) -> None:
    """The tensors timm starts at a constant (gains, biases, the last conv's zero gain) and its small classifier
    at random."""
    if name.endswith("gain"):  # and dm_nfnet's skipinit_gain, which starts at zero
        tensor.uniform_(0.5, 1.5, generator=generator)
    elif name.endswith("bias") or name.startswith("head"):
        tensor.normal_(0, 0.2, generator=generator)


def tiny_timm(seed: int = 0, dm: bool = False):
    torch.manual_seed(seed)
    return timm.create_model("dm_nfnet_f0" if dm else "nfnet_f0",
                             **{k: tuple(v) if isinstance(v, list) else v for k, v in TINY.items()},
                             num_features=2 * TINY["channels"][-1])


def tiny_reference(dm: bool = False):
    model = tiny_timm(dm=dm)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, tensor in model.named_parameters():
            draw(name, tensor, generator)
    return model.eval()


def mutated(old: str, new: str, tmp_path) -> archc.Spec:
    """The spec with one textual change (``zoo.mutate``), its variants after nfnet_f0 and dm_nfnet_f0 left out: each
    variant is checked as the spec loads, and the tests build the network class itself."""
    text = zoo.mutate((SPECS / "nfnet.arch").read_text(), old, new)
    path = tmp_path / "nfnet.arch"
    path.write_text(re.sub(r"^variant (dm_)?nfnet_f[1-7] .*\n", "", text, flags=re.M))
    return archc.load(path)


def tiny(s=None, seed: int = 0, dm: bool = False):
    torch.manual_seed(seed)
    return (s or spec("nfnet")).python_module().NormFreeNet(**TINY, **(DM if dm else {}))


@pytest.mark.parametrize("variant", fast_tier(VARIANTS, {"nfnet_f0", "dm_nfnet_f0"}))
def test_counts_and_keys_match_timm(variant):
    assert_counts_and_keys("nfnet", variant, PARAMS[variant])


def test_the_tiny_configuration_matches_timm():
    s = spec("nfnet")
    model, x = tiny(s), image(size=SIZE)
    assert count_params(model) == count_params(tiny_reference()) == s.graph("nfnet_f0", **TINY).params
    diff, _ = zoo.compare(model, tiny_reference(), x)
    assert diff == 0
    assert_static_shapes(s, "nfnet_f0", model, x, img_size=SIZE, **TINY)


# even: padded 0 above and 1 below at stride 2; odd: 1 and 1 (in the slow tier: test_same_padding has both sizes)
@pytest.mark.parametrize("size", [SIZE, pytest.param(SIZE + 1, marks=pytest.mark.slow)])
def test_the_tiny_dm_configuration_matches_timm(size):
    s = spec("nfnet")
    model, x = tiny(s, dm=True), image(size=size)
    assert count_params(model) == count_params(tiny_reference(dm=True)) == s.graph("dm_nfnet_f0", **TINY).params
    diff, _ = zoo.compare(model, tiny_reference(dm=True), x)
    assert diff == 0
    assert_static_shapes(s, "dm_nfnet_f0", model, x, img_size=size, **TINY)


@pytest.mark.parametrize("dm", [False, pytest.param(True, marks=pytest.mark.slow)])  # the fuzzer pads "same" too
def test_the_interpreter_computes_ws_conv_from_its_definition(dm):
    """The graph interpreter (ws_conv's meaning written from the paper's equation, not with batch_norm as the
    generated helper and timm compute it; "same" padding from the input's static size, not from the tensor's as
    the generated helper pads) agrees with the generated model to within rounding."""
    s = spec("nfnet")
    model, x = tiny(s, dm=dm), image(size=SIZE + dm)
    model.load_state_dict(tiny_reference(dm).state_dict())
    interp = s.interpret("dm_nfnet_f0" if dm else "nfnet_f0", img_size=SIZE + dm, **TINY)
    interp.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        ours, theirs = model.eval()(x), interp.eval()(x)
    assert (ours - theirs).abs().max() <= 1e-5 * theirs.abs().max()


@pytest.mark.slow  # the fast tier compares each family once; the full suite proves it can fail
@pytest.mark.parametrize("dm", [False, True])
def test_starts_as_timm_does_seed_for_seed(dm):
    ours, theirs = tiny(seed=7, dm=dm).state_dict(), tiny_timm(seed=7, dm=dm).state_dict()
    assert list(ours) == list(theirs)
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    # the zero gain: the last conv's, or DeepMind's scalar (the conv's gain then starts at 1)
    zero = "stages.1.1.skipinit_gain" if dm else "stages.1.1.conv3.gain"
    assert torch.equal(ours[zero], torch.zeros_like(ours[zero]))
    assert torch.equal(ours["stages.1.1.conv3.gain"], torch.full_like(ours["stages.1.1.conv3.gain"], float(dm)))


@pytest.mark.slow  # the fast tier compares each family once; the full suite proves it can fail
def test_without_the_zero_gain_rule_it_no_longer_starts_as_timm(tmp_path):
    s = mutated("    init NormFreeBlock.conv3.gain = 0 if not skipinit\n", "", tmp_path)
    ours, theirs = tiny(s, seed=7).state_dict(), tiny_timm(seed=7).state_dict()
    assert not all(torch.equal(ours[k], theirs[k]) for k in theirs)


MUTATIONS = [
    ("eps = 1e-5,", "eps = 1e-4,"),  # the standardisation's eps
    ("gamma = 1.7015043497085571", "gamma = 1.7139588594436646"),  # ReLU's gamma instead of GELU's
    ("1 / expected_var ** 0.5", "1 / expected_var"),  # beta: the variance, not the standard deviation
    ("(1.0 if i == 0 else expected_var) + alpha ** 2", "expected_var + alpha ** 2"),  # not reset at transitions
    ("(downsample(pre) if", "(downsample(x) if"),  # the transition's skip path from h_i, not h_i / beta
    ("let h = attn_gain * attn_last(", "let h = attn_last("),  # SE not doubled
]
DM_MUTATIONS = [
    ('let pad = "same" if same_padding else 1', "let pad = 1 if same_padding else 1"),  # symmetric: 1 all round
    ("skipinit = skipinit)", "skipinit = false)"),  # SkipInit's scalar left out
    ("let act_gamma = gamma if gamma_in_act else 1.0", "let act_gamma = 1.0"),  # gamma lost with the activations
]


@pytest.mark.slow  # the fast tier compares each family once; the full suite proves it can fail
@pytest.mark.parametrize(("old", "new"), MUTATIONS)
def test_a_changed_network_no_longer_matches(old, new, tmp_path):
    s = mutated(old, new, tmp_path)
    with pytest.raises(AssertionError):
        zoo.compare(tiny(s), tiny_reference(), image(size=SIZE))


@pytest.mark.slow  # the fast tier compares each family once; the full suite proves it can fail
@pytest.mark.parametrize(("old", "new"), DM_MUTATIONS)
def test_a_changed_dm_network_no_longer_matches(old, new, tmp_path):
    s = mutated(old, new, tmp_path)
    with pytest.raises(AssertionError):
        zoo.compare(tiny(s, dm=True), tiny_reference(dm=True), image(size=SIZE))



def test_rules_for_ws_conv_reach_it_beside_rules_for_conv(tmp_path):
    """_WSConv2d is an nn.Conv2d: the generated init loop tests it first, or conv's branch would take it."""
    path = tmp_path / "rules.arch"
    path.write_text("network N() {\n    input 3 x 8 x 8\n    a = ws_conv(4, 3, padding = 1)\n    b = conv(4, 3)\n"
                    "    init conv.weight = 0\n    init ws_conv.weight = 1\n    init ws_conv.gain = 2\n}\n"
                    "variant n = N()\n")
    model = archc.load(path).build("n")
    assert model.a.weight.eq(1).all() and model.a.gain.eq(2).all() and model.b.weight.eq(0).all()


@pytest.mark.slow  # 71 M parameters, a forward of several seconds
@pytest.mark.parametrize("variant", ["nfnet_f0", "dm_nfnet_f0"])
def test_f0_matches_timm(variant):
    s = spec("nfnet")
    model, x = s.build(variant), image(size=SIZE)
    diff, _ = zoo.compare(model, reference(variant, draw), x)
    assert diff == 0
    assert_static_shapes(s, variant, model, x, img_size=SIZE)


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["nfnet_f0", "dm_nfnet_f0"])
def test_f0_starts_as_timm_does_seed_for_seed(variant):
    assert starts_as_timm(spec("nfnet"), variant)


@pytest.mark.slow  # a dynamo trace
@pytest.mark.parametrize("dm", [False, True])
def test_no_graph_breaks(dm):
    assert graph_breaks(tiny(dm=dm).eval(), image(batch=1, size=SIZE)) == 0
