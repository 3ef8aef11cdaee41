"""timm's model API on every generated network: ``forward_features``, ``forward_head(x, pre_logits)``,
``get_classifier``, ``reset_classifier``, ``num_features``, ``head_hidden_size``, ``num_classes`` and
``set_grad_checkpointing``; checked against timm's own methods where timm has the model under the same names,
and checkpointing by the memory that backward keeps."""

from __future__ import annotations

import pytest
import timm
import torch
from archtest import fast_tier, randomize_batchnorm, spec
from torch import nn

import archc
from archc.zoo.registry import model_entrypoint

# networks whose end is not one classifier: an ensemble, and NIN (its classes come from a block, mlpconv4)
WITHOUT_HEAD = {"googlenet_ensemble", "vgg16_vgg19_ensemble", "nin_cifar10", "nin_cifar100",
                "nin_imagenet"}


def shipped() -> list[str]:
    return [name for name in archc.list_models() if name not in WITHOUT_HEAD]


def width(t: torch.Tensor) -> int:
    """The feature width of a map (N x C x H x W), tokens (N x L x D) or features (N x F)."""
    return t.shape[1] if t.dim() == 4 else t.shape[-1]


def input_shape(name: str) -> tuple[int, ...]:
    """A batch of two at the variant's own input size, as its spec says."""
    stem = model_entrypoint(name).__module__.rsplit(".", 1)[-1]
    graph = spec(stem).graph(name)
    return (2, *graph.node(graph.input).shape)


def test_only_the_networks_named_lack_the_api():
    for name in archc.list_models():
        cls = model_entrypoint(name).__annotations__["return"]  # the network's class
        assert hasattr(cls, "forward_head") != (name in WITHOUT_HEAD), name


@pytest.mark.parametrize("name", fast_tier(shipped(), {"resnet18", "efficientnet_b0", "squeezenet1_1", "googlenet",
                                                       "vit_b_32", "swin_t", "deit_tiny_patch16_224", "vgg11"}))
def test_the_head_and_the_features_fit_together(name):
    """On the meta device: forward_features' width is num_features, the pre-logits' is head_hidden_size, and
    the head gives num_classes; a reset classifier gives the new number."""
    with torch.device("meta"):
        model = archc.create_model(name).eval()
        x = torch.empty(input_shape(name))
        features = model.forward_features(x)
        assert width(features) == model.num_features
        pre = model.forward_head(features, pre_logits=True)
        assert width(pre) == model.head_hidden_size
        logits = model.forward_head(features)
        assert logits.shape == (2, model.num_classes) == model(x).shape
        assert model.get_classifier() is not None
        model.reset_classifier(7)  # (the features stay what they were: only the head is run again)
        assert model.forward_head(features).shape == (2, 7) and model.num_classes == 7


@pytest.mark.parametrize("name", fast_tier(["resnet18", "squeezenet1_1", "googlenet", "mobilenet_v3_small",
                                            "shufflenet_v2_x0_5"], {"resnet18", "squeezenet1_1", "googlenet"}))
def test_the_halves_compute_the_forward(name):
    """In eval, forward_head(forward_features(x)) is forward(x) (also where forward keeps its side outputs
    whole), and the classifier on the pre-logits gives the logits."""
    torch.manual_seed(0)
    model = randomize_batchnorm(archc.create_model(name)).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        logits = model(x)
        assert torch.equal(model.forward_head(model.forward_features(x)), logits)
        pre = model.forward_head(model.forward_features(x), pre_logits=True)
        if isinstance(model.get_classifier(), nn.Linear):
            torch.testing.assert_close(model.get_classifier()(pre), logits)
            model.reset_classifier(0)
            assert torch.equal(model(x), pre) and model.num_classes == 0


# timm's models under the same module names: ours loads timm's state_dict, and each method's output is timm's
TIMM_TWINS = ["resnet18", "deit_tiny_patch16_224", "mixer_s32_224", "resmlp_12_224", "pvt_v2_b0", "repvgg_a0",
              "cait_xxs24_224", "inception_v4", "convmixer_768_32", "gmlp_ti16_224", "convnextv2_atto", "nfnet_f0",
              "poolformer_s12", "poolformerv2_s12", "xcit_nano_12_p16_224"]


@pytest.mark.parametrize("name", fast_tier(TIMM_TWINS, {"resnet18", "deit_tiny_patch16_224", "mixer_s32_224"}))
def test_the_methods_are_timms(name):
    torch.manual_seed(0)
    theirs = randomize_batchnorm(timm.create_model(name, pretrained=False)).eval()
    ours = archc.create_model(name).eval()
    ours.load_state_dict(theirs.state_dict())
    assert (ours.num_features, ours.head_hidden_size, ours.num_classes) == \
        (theirs.num_features, getattr(theirs, "head_hidden_size", theirs.num_features), theirs.num_classes)
    x = torch.randn(1, 3, 299 if name == "inception_v4" else 224, 299 if name == "inception_v4" else 224)
    with torch.no_grad():
        features = theirs.forward_features(x)
        torch.testing.assert_close(ours.forward_features(x), features, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ours.forward_head(features, pre_logits=True),
                                   theirs.forward_head(features, pre_logits=True), rtol=1e-5, atol=1e-5)
        assert ours.get_classifier().weight.shape == theirs.get_classifier().weight.shape
        ours.reset_classifier(5)
        theirs.reset_classifier(5)
        assert ours.get_classifier().weight.shape == theirs.get_classifier().weight.shape


def test_a_split_in_the_wrong_place_is_caught():
    """The comparison above can fail: features taken after the pooling are not timm's."""
    theirs = timm.create_model("resnet18", pretrained=False).eval()
    ours = archc.create_model("resnet18").eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        pooled = ours.avgpool(ours.forward_features(x))
        assert pooled.shape != theirs.forward_features(x).shape


def saved_bytes(model: nn.Module, x: torch.Tensor) -> tuple[int, list[torch.Tensor]]:
    """The bytes of activations the forward pass keeps for backward (not the weights, which are there anyway),
    and the gradients backward then gives."""
    kept = []
    weights = {p.data_ptr() for p in model.parameters()}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if t.data_ptr() not in weights:
            kept.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model(x).square().sum()
    loss.backward()
    return sum(kept), [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("name", fast_tier(["resnet18", "deit_tiny_patch16_224"], {"resnet18"}))
def test_grad_checkpointing_keeps_less_and_gives_the_same_gradients(name):
    torch.manual_seed(0)
    model = archc.create_model(name).train()
    x = torch.randn(2, 3, 224 if "deit" in name else 64, 224 if "deit" in name else 64)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    plain, grads = saved_bytes(model, x)
    model.load_state_dict(state)  # (the batch norms' running statistics moved)
    model.zero_grad()
    model.set_grad_checkpointing()
    checkpointed, grads_checkpointed = saved_bytes(model, x)
    assert checkpointed < plain / 2  # (the stem's layers are not checkpointed: only stages and blocks are)
    for a, b in zip(grads, grads_checkpointed):
        torch.testing.assert_close(a, b)
    model.set_grad_checkpointing(False)
    assert saved_bytes(model, x)[0] == plain


def test_the_pooling_is_the_specs():
    model = archc.create_model("resnet18")
    with pytest.raises(ValueError, match="the spec fixes the pooling: global_pool=max cannot change it"):
        model.reset_classifier(5, "max")
    model.reset_classifier(5, None)
    assert model.num_classes == 5


@pytest.mark.parametrize("head", ['"2" = linear(4)', 'head = seq { "fc-1" = linear(4) }'])
def test_a_classifier_whose_name_is_no_identifier_can_be_reset(head):
    """``getattr(self, "2") = ...`` is no Python: the generated reset_classifier registers the new layer by name."""
    text = f'network Mlp() {{\n    input 16\n    "0" = linear(32)\n    relu\n    {head}\n}}\nvariant mlp = Mlp()\n'
    model = archc.load("mlp.arch", text=text).build()
    assert model(torch.randn(2, 16)).shape == (2, 4)
    model.reset_classifier(7)
    assert model.get_classifier().out_features == 7 and model(torch.randn(2, 16)).shape == (2, 7)
    model.reset_classifier(0)
    assert isinstance(model.get_classifier(), nn.Identity)
