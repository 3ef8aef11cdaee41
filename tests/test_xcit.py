"""XCiT (El-Nouby et al. 2021): specs/xcit.arch against timm's 28 models: cross-covariance attention written from
tensor primitives (queries and keys L2-normalised along the tokens, a d_h x d_h map scaled by a learned temperature),
the local patch interaction on the token map, the conv patch embedding, the Fourier positional encoding computed
from a table of coordinates, and CaiT's class attention, under timm's names."""

import re
from functools import cache

import pytest
import timm
import torch
import zoo
from archtest import SPECS, assert_static_shapes, fast_tier, graph_breaks, spec
from timmzoo import assert_counts_and_keys, image, reference

import archc

PARAMS = {"xcit_nano_12_p16_224": 3_053_224, "xcit_nano_12_p16_384": 3_053_224, "xcit_tiny_12_p16_224": 6_716_272,
          "xcit_tiny_12_p16_384": 6_716_272, "xcit_tiny_24_p16_224": 12_116_896, "xcit_tiny_24_p16_384": 12_116_896,
          "xcit_small_12_p16_224": 26_253_304, "xcit_small_12_p16_384": 26_253_304,
          "xcit_small_24_p16_224": 47_671_384, "xcit_small_24_p16_384": 47_671_384,
          "xcit_medium_24_p16_224": 84_395_752, "xcit_medium_24_p16_384": 84_395_752,
          "xcit_large_24_p16_224": 189_096_136, "xcit_large_24_p16_384": 189_096_136,
          "xcit_nano_12_p8_224": 3_049_016, "xcit_nano_12_p8_384": 3_049_016, "xcit_tiny_12_p8_224": 6_706_504,
          "xcit_tiny_12_p8_384": 6_706_504, "xcit_tiny_24_p8_224": 12_107_128, "xcit_tiny_24_p8_384": 12_107_128,
          "xcit_small_12_p8_224": 26_213_032, "xcit_small_12_p8_384": 26_213_032,
          "xcit_small_24_p8_224": 47_631_112, "xcit_small_24_p8_384": 47_631_112,
          "xcit_medium_24_p8_224": 84_323_624, "xcit_medium_24_p8_384": 84_323_624,
          "xcit_large_24_p8_224": 188_932_648, "xcit_large_24_p8_384": 188_932_648}
SMALL = 64  # the fast comparisons' image side: a 4 x 4 grid of 16 x 16 patches (timm's models take any multiple)


def draw(name, tensor, generator) -> None:
    """Every tensor at random: layer scales at about 0.1 (timm starts the deep models' at 1e-5, under the
    comparison's tolerance; near 1, 24 random layers wash the image out of the output), the temperatures, the norms'
    affine terms, the zero biases and the class token; weights of unit gain, so that the attention maps matter."""
    if name.endswith(("gamma1", "gamma2", "gamma3")):
        tensor.uniform_(0.05, 0.15, generator=generator)
    elif name.endswith("temperature"):
        tensor.uniform_(0.5, 3.0, generator=generator)
    elif tensor.dim() == 1 and name.endswith("weight"):  # layer and batch norms
        tensor.uniform_(0.5, 1.5, generator=generator)
    elif name.endswith("bias") or name == "cls_token":
        tensor.normal_(0, 0.2, generator=generator)
    elif name.endswith("weight"):
        tensor.normal_(0, tensor[0].numel() ** -0.5, generator=generator)


@cache
def timm_model(variant: str) -> torch.nn.Module:
    """timm's model with every parameter drawn, and its batch norms' statistics too (shared: nothing changes it)."""
    return zoo.randomize_batchnorm(reference(variant, draw), seed=3).eval()


def mutant(old: str, new: str, tmp_path) -> archc.Spec:
    """The spec with one mutation (``zoo.mutate``) and two variants, the nano one the comparison builds and one that
    calls the other class-attention block (the code generator writes a block no variant calls without its shapes):
    checking the 28 variants would take most of the test's time."""
    text = zoo.mutate((SPECS / "xcit.arch").read_text(), old, new)
    text = re.sub(r"^variant (?!xcit_nano_12_p16_224 |xcit_tiny_12_p16_224 ).*\n", "", text, flags=re.M)
    (tmp_path / "cait.arch").write_text((SPECS / "cait.arch").read_text())
    (tmp_path / "xcit.arch").write_text(text)
    return archc.load(tmp_path / "xcit.arch")


def outputs(model, reference_model, x) -> float:
    """Strict loading, then the largest difference of the eval outputs."""
    model.load_state_dict(reference_model.state_dict(), strict=True)
    with torch.no_grad():
        return (model.eval()(x) - reference_model(x)).abs().max().item()


@pytest.mark.parametrize("variant", fast_tier(list(PARAMS), {"xcit_nano_12_p16_224"}))
def test_counts_and_keys_match_timm(variant):
    assert_counts_and_keys("xcit", variant, PARAMS[variant])


def test_nano_matches_timm():
    """Exactly, for one image. For two, the 1x1 conv of the positional encoding (which timm applies to one table and
    repeats, and the spec to the table of each sample) may be split across threads otherwise than timm's: exact on
    one thread, a difference of rounding on two (under 1e-6 at an output scale of 3.5 to 4)."""
    s = spec("xcit")
    model, ref = s.build("xcit_nano_12_p16_224", img_size=SMALL), timm_model("xcit_nano_12_p16_224")
    assert outputs(model, ref, image(batch=1, size=SMALL)) == 0
    diff, scale = zoo.compare(model, ref, image(size=SMALL))
    assert diff <= 1e-6 * scale
    assert_static_shapes(s, "xcit_nano_12_p16_224", model, image(size=SMALL), img_size=SMALL)


MUTATIONS = [
    ("let q = normalize(transpose(transpose(select(t, 2, 0), 1, 2), 2, 3), dim = -1)",
     "let q = normalize(transpose(transpose(select(t, 2, 0), 1, 2), 2, 3), dim = -2)"),  # across the features
    ("softmax(temperature(matmul(q, transpose(k, -2, -1))), dim = -1)",
     "temperature(softmax(matmul(q, transpose(k, -2, -1)), dim = -1))"),  # the temperature after the softmax
    ("let t = s + gamma3(local_mp(norm3(s)))", "let t = x + gamma3(local_mp(norm3(s)))"),  # a skip from too far
    ("act = gelu\n    bn = batchnorm", "bn = batchnorm\n    act = gelu"),  # LPI's norm before its activation
    ("cat([pos_y, pos_x], 1)", "cat([pos_x, pos_y], 1)"),  # columns first
    ("stack([sin(ry), cos(ry)], 2)", "stack([cos(ry), sin(ry)], 2)"),
    ("(2 * coordinates(x, (hidden_dim // 2, 1, 1), 1) / hidden_dim)",
     "(coordinates(x, (hidden_dim // 2, 1, 1), 1) / hidden_dim)"),  # other wavelengths
    ("let t = x + gamma1(cat([attn(u), narrow(u, 1, 1, n)], 1))",
     "let t = x + gamma1(cat([attn(u), narrow(x, 1, 1, n)], 1))"),  # timm adds the normalised patches
]


@pytest.mark.parametrize(("old", "new"), [m if i == 1 else pytest.param(*m, marks=pytest.mark.slow)
                                          for i, m in enumerate(MUTATIONS)])
def test_a_changed_spec_no_longer_matches(old, new, tmp_path):
    s = mutant(old, new, tmp_path)
    with pytest.raises(AssertionError):
        zoo.compare(s.build("xcit_nano_12_p16_224", img_size=SMALL), timm_model("xcit_nano_12_p16_224"),
                    image(size=SMALL))


def test_the_positional_encoding_is_timms():
    """The table of sines and cosines, projected, for a grid that is not square (rows and columns told apart)."""
    from timm.models.xcit import PositionalEncodingFourier

    s = spec("xcit")
    torch.manual_seed(0)
    theirs = PositionalEncodingFourier(dim=64)
    module = s.python_module().PositionalEncodingFourier(64, 64, 3, 5)
    module.load_state_dict(theirs.state_dict(), strict=True)
    with torch.no_grad():
        ours = module(torch.zeros(1, 15, 64))
        assert torch.equal(ours, theirs(1, 3, 5).flatten(2).transpose(1, 2))


@pytest.mark.slow  # two models made, twice, and a mutant
@pytest.mark.parametrize("variant", ["xcit_nano_12_p16_224", "xcit_tiny_12_p8_224"])
def test_starts_as_timm_seed_for_seed(variant, tmp_path):
    """Every tensor is timm's for the same seed: the class token's truncated normal drawn first (a rule for the
    learned tensor, drawn at the start of the pass), then the linear layers'. Without that rule every linear
    layer's draw shifts."""
    def states(s, name):
        torch.manual_seed(7)
        ours = s.build(name).state_dict()
        torch.manual_seed(7)
        return ours, timm.create_model(name, pretrained=False).state_dict()

    ours, theirs = states(spec("xcit"), variant)
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    without = mutant("    init cls_token = trunc_normal_timm(std = 0.02)\n", "", tmp_path)
    ours, theirs = states(without, "xcit_nano_12_p16_224")  # (the mutant has the nano variant)
    linear = {k for k in theirs if k.endswith("weight") and theirs[k].dim() == 2}
    assert not any(torch.equal(ours[k], theirs[k]) for k in linear)


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["xcit_tiny_12_p16_224", "xcit_small_24_p8_224"])
def test_larger_models_match_timm(variant):
    diff, scale = zoo.compare(spec("xcit").build(variant), timm_model(variant), image())
    assert diff <= 1e-6 * scale


@pytest.mark.slow
def test_a_model_at_384_matches_timm():
    s = spec("xcit")
    model, x = s.build("xcit_nano_12_p8_384"), image(batch=1, size=384)
    # (exact on one thread; on two, oneDNN splits the 2,304 tokens' work otherwise and rounding shows)
    assert outputs(model, timm_model("xcit_nano_12_p8_384"), x) <= 1e-6
    assert_static_shapes(s, "xcit_nano_12_p8_384", model, x)


@pytest.mark.slow  # a dynamo trace
def test_no_graph_breaks():
    assert graph_breaks(spec("xcit").build("xcit_nano_12_p16_224").eval(), image(batch=1)) == 0
