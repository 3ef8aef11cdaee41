"""Network In Network (Lin et al. 2013) against the layer tables of the authors' Caffe models.

The paper states no parameter counts and there is no torchvision or timm NIN: the checks are the exact
counts of reference-numbers.md, the layer tables there, and what mlpconv and global average pooling do.
"""

import pytest
import torch
from archtest import assert_static_shapes, count_params, graph_breaks, input_for, spec

# variant: (params, classes)
NINS = {
    "nin_cifar10": (966_986, 10),
    "nin_cifar100": (984_356, 100),
    "nin_imagenet": (7_595_176, 1000),
}

# reference-numbers.md: (out_channels, kernel_size, stride) of every conv, then the pools between them
CIFAR_CONVS = [(192, 5, 1), (160, 1, 1), (96, 1, 1), (192, 5, 1), (192, 1, 1), (192, 1, 1), (192, 3, 1), (192, 1, 1)]
IMAGENET_CONVS = [
    (96, 11, 4), (96, 1, 1), (96, 1, 1),
    (256, 5, 1), (256, 1, 1), (256, 1, 1),
    (384, 3, 1), (384, 1, 1), (384, 1, 1),
    (1024, 3, 1), (1024, 1, 1),
]  # fmt: skip


@pytest.mark.parametrize("variant", NINS)
def test_counts(variant):
    s = spec("nin")
    params, classes = NINS[variant]
    assert s.graph(variant).params == params
    model = s.build(variant)
    assert count_params(model) == params
    assert model(input_for(s, variant)).shape == (2, classes)


@pytest.mark.parametrize(
    ("variant", "convs"),
    [
        ("nin_cifar10", [*CIFAR_CONVS, (10, 1, 1)]),
        ("nin_cifar100", [*CIFAR_CONVS, (100, 1, 1)]),
        ("nin_imagenet", [*IMAGENET_CONVS, (1000, 1, 1)]),
    ],
)
def test_layer_table(variant, convs):
    ops = spec("nin").graph(variant).ops()
    assert [
        (op.args["out_channels"], op.args["kernel_size"], op.args["stride"]) for op in ops if op.op == "conv"
    ] == convs
    # mlpconv: every conv, the class maps included, is followed by a ReLU
    for i, op in enumerate(ops):
        if op.op == "conv":
            assert ops[i + 1].op == "relu", op.name
    # the classifier is global average pooling: no fully connected layer
    assert not any(op.op == "linear" for op in ops)
    assert [op.op for op in ops[-2:]] == ["adaptive_avgpool", "flatten"]


def test_cifar_pools_and_dropout():
    ops = [op for op in spec("nin").graph("nin_cifar10").ops() if op.op in ("maxpool", "avgpool", "dropout")]
    assert [op.op for op in ops] == ["maxpool", "dropout", "avgpool", "dropout"]
    assert all((op.args["kernel_size"], op.args["stride"]) == (3, 2) for op in ops if op.op != "dropout")
    # Caffe's pools round up: 32 -> 16 -> 8, and the class maps are the 8x8 that cifar10_nin's pool3 averages
    modules = spec("nin").graph("nin_cifar10").modules()
    assert modules["pool1"].shape == (96, 16, 16)
    assert modules["pool2"].shape == (192, 8, 8)
    assert modules["mlpconv3.cccp2"].shape == (10, 8, 8)


def test_imagenet_maps():
    modules = spec("nin").graph("nin_imagenet").modules()
    assert modules["mlpconv1.conv"].shape == (96, 54, 54)
    assert [modules[f"pool{i}"].shape[1] for i in (1, 2, 3)] == [27, 13, 6]
    assert modules["mlpconv4.cccp2"].shape == (1000, 6, 6)  # the 6x6 maps nin_imagenet's pool4 averages


@pytest.mark.parametrize("variant", ["nin_cifar10", "nin_imagenet"])
def test_output_is_the_average_of_the_class_maps(variant):
    s = spec("nin")
    model = s.build(variant).eval()
    last = model.mlpconv4 if variant == "nin_imagenet" else model.mlpconv3
    maps = []
    handle = last.register_forward_hook(lambda module, inputs, output: maps.append(output.clone()))
    x = input_for(s, variant)
    with torch.no_grad():
        out = model(x)
    handle.remove()
    assert torch.allclose(out, maps[0].mean(dim=(2, 3)), atol=1e-6)
    assert (maps[0] >= 0).all()  # ReLU after the last 1x1 conv too


def test_num_classes_is_a_factory_argument():
    s = spec("nin")
    model = s.build("nin_imagenet", num_classes=10)
    assert model.mlpconv4.cccp2.out_channels == 10
    assert s.graph("nin_imagenet", num_classes=10).params == count_params(model)


@pytest.mark.slow  # a dynamo trace
@pytest.mark.parametrize("variant", NINS)
def test_static_shapes_and_graph_breaks(variant):
    s = spec("nin")
    model = s.build(variant)
    x = input_for(s, variant)
    assert_static_shapes(s, variant, model, x)
    assert graph_breaks(model.eval(), x) == 0
