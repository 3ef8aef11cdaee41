"""rmsnorm: torch's nn.RMSNorm on tokens, and over the channels of a map (rmsnorm2d there as a class of its own, which a
network may hold), held as a norm_layer too. A small spec is held to a hand-written torch module (strict state_dict,
equal outputs); a changed eps or another norm makes the comparison fail; the graph interpreter computes it from its
definition."""

import pytest
import torch
import zoo
from archtest import assert_static_shapes, count_params
from torch import nn

import archc

SPEC = """\
# A conv stem normalised over its channels, then tokens through a pre-norm MLP whose norm the network gives.
block Mlp(dim, norm_layer = rmsnorm) {
    residual {
        norm = norm_layer
        fc1 = linear(2 * dim)
        gelu
        fc2 = linear(dim)
    }
}

network Tiny(norm_layer = rmsnorm(eps = 1e-5), stem_norm_layer = rmsnorm2d(eps = 1e-6)) {
    input 3 x 8 x 8
    stem = conv(16, 2, stride = 2)
    stem_norm = stem_norm_layer
    permute((0, 2, 3, 1))
    flatten_dims(1, 2)
    blocks = seq { for i in range(2) { "{i}" = Mlp(16, norm_layer = norm_layer) } }
    norm = rmsnorm
    mean(1)
    fc = linear(10)
}
variant tiny = Tiny()
"""


class Mlp(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.RMSNorm(dim, eps=1e-5)
        self.fc1 = nn.Linear(dim, 2 * dim)
        self.fc2 = nn.Linear(2 * dim, dim)

    def forward(self, x):
        return x + self.fc2(nn.functional.gelu(self.fc1(self.norm(x))))


class Tiny(nn.Module):
    """The spec, written by hand: the map's norm is nn.RMSNorm on the channels moved last."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 2, stride=2)
        self.stem_norm = nn.RMSNorm(16, eps=1e-6)
        self.blocks = nn.Sequential(Mlp(16), Mlp(16))
        self.norm = nn.RMSNorm(16)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.stem(x)
        x = self.stem_norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        x = self.blocks(x.permute(0, 2, 3, 1).flatten(1, 2))
        return self.fc(self.norm(x).mean(1))


def reference() -> nn.Module:
    torch.manual_seed(0)
    model = Tiny()
    with torch.no_grad():  # scales off 1, so that a dropped scale shows
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
    return model.eval()


def load(tmp_path, text: str = SPEC) -> archc.Spec:
    path = tmp_path / "tiny.arch"
    path.write_text(text)
    return archc.load(path)


def small_input() -> torch.Tensor:
    return torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(3)) * 0.01  # small: eps matters


def test_matches_a_hand_written_module(tmp_path):
    s = load(tmp_path)
    model, ref, x = s.build("tiny"), reference(), small_input()
    assert count_params(model) == count_params(ref) == s.graph("tiny").params
    diff, _ = zoo.compare(model, ref, x)
    assert diff == 0
    assert_static_shapes(s, "tiny", model, x)
    source = s.source()
    assert "stem_norm_layer: Callable[..., nn.Module] = partial(_RMSNorm2d, eps=1e-06)" in source
    assert "norm_layer: Callable[..., nn.Module] = partial(nn.RMSNorm, eps=1e-05)" in source
    assert "self.norm = nn.RMSNorm(16)\n" in source  # torch's eps: none given


@pytest.mark.parametrize(("old", "new"), [
    ("rmsnorm2d(eps = 1e-6)", "rmsnorm2d(eps = 1e-2)"),  # another eps
    ("norm_layer = rmsnorm(eps = 1e-5)", "norm_layer = rmsnorm(eps = 1e-1)"),  # the held norm's
    ("    norm = rmsnorm\n", "    norm = rmsnorm\n    identity\n    norm2 = rmsnorm(elementwise_affine = false)\n"),
])
def test_a_changed_spec_no_longer_matches(tmp_path, old, new):
    s = load(tmp_path, zoo.mutate(SPEC, old, new))
    with pytest.raises(AssertionError):
        zoo.compare(s.build("tiny"), reference(), small_input())


def test_a_layernorm_instead_does_not_load(tmp_path):
    s = load(tmp_path, zoo.mutate(SPEC, "stem_norm = stem_norm_layer", "stem_norm = layernorm(eps = 1e-6)"))
    with pytest.raises(AssertionError, match="strict load failed"):  # its bias
        zoo.compare(s.build("tiny"), reference(), small_input())


def test_rmsnorm_on_a_map_written_out_is_the_held_rmsnorm2d(tmp_path):
    s = load(tmp_path, zoo.mutate(SPEC, "stem_norm = stem_norm_layer", "stem_norm = rmsnorm(eps = 1e-6)"))
    assert "self.stem_norm = _RMSNorm2d(16, eps=1e-06)" in s.source()
    assert zoo.compare(s.build("tiny"), reference(), small_input())[0] == 0


def test_the_interpreter_computes_it_from_its_definition(tmp_path):
    """The interpreter's rmsnorm (the root mean square written out, torch's machine epsilon where eps is none)
    agrees with nn.RMSNorm, in float64 as in float32."""
    s = load(tmp_path)
    model = s.build("tiny")
    model.load_state_dict(reference().state_dict())
    interp = s.interpret("tiny")
    interp.load_state_dict(model.state_dict(), strict=True)
    x = small_input()
    for dtype in (torch.float32, torch.float64):
        with torch.no_grad():
            ours, theirs = interp.to(dtype).eval()(x.to(dtype)), model.to(dtype).eval()(x.to(dtype))
        assert (ours - theirs).abs().max() <= 1e-5 * theirs.abs().max()


def test_an_init_rule_reaches_its_weight(tmp_path):
    s = load(tmp_path, zoo.mutate(SPEC, "    fc = linear(10)\n", "    fc = linear(10)\n    init rmsnorm.weight = 0.5\n"))
    model = s.build("tiny")
    assert all(m.weight.eq(0.5).all() for m in model.modules() if isinstance(m, nn.RMSNorm))


@pytest.mark.parametrize(("body", "message"), [
    ("input 4 x 10 x 10\n    n = rmsnorm(eps = 0)", "eps"),
    ("input 4 x 100\n    c = conv1d(8, 3)\n    n = rmsnorm", "the channels are not last"),
])
def test_misuse_is_a_located_error(tmp_path, body, message):
    with pytest.raises(archc.SpecError, match=message) as err:
        load(tmp_path, f"network N() {{\n    {body}\n}}\nvariant n = N()\n")
    assert err.value.span is not None and err.value.span.line >= 2
