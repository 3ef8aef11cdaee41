"""The registry of the layer kinds the language knows: one entry each (the entries are in the family modules).

An entry holds everything about a kind: its argument schema (a pydantic model, field order =
positional order), the input layouts it accepts and how it transforms a tensor type, how many
parameters and multiply-accumulates it costs, and how it is written in PyTorch: as a module
(``nn.Conv2d(...)``, or a small helper class of ``backends/python/helpers.py`` where torch has none), as a
function call in ``forward`` for parameter-free kinds, as a forward-only expression
(``template``), or as a learned tensor (``learned``). Adding a layer kind means adding one entry
to its family's module.

An entry also carries its functional meaning for the graph interpreter (``backends/interpret.py``), the independent
oracle of the code generator: ``make`` builds the op's module (or learned tensor) from its arguments and input
type, with the generated model's parameter and buffer names; ``run`` computes its output. Both import torch
inside their bodies, so the registry stays importable without it. The kinds are kept in family modules:
``conv`` (convolution, pooling), ``norm`` (normalisation, linear), ``activations``, ``layout`` (channels,
layout, regularisation, learned tensors), ``tokens``, ``windows`` and ``partition``.

Shapes exclude the batch dimension and follow the tensor's layout (``sema.layout.TensorType``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..sema.layout import TensorType

Pos = Annotated[int, Field(gt=0)]
NonNeg = Annotated[int, Field(ge=0)]
Pair = Pos | tuple[Pos, Pos]
PadPair = NonNeg | tuple[NonNeg, NonNeg]
Padding = PadPair | Literal["same"]  # "same": TensorFlow's, ceil(size / stride) outputs, the odd pad after
Prob = Annotated[float, Field(ge=0.0, le=1.0)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
ANY = None  # an entry's ``layouts``: every layout


class ShapeError(ValueError):
    """A shape rule failed; the elaborator adds the location (and ``hint``, where one helps)."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


class Args(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False, defer_build=True)


@dataclass(frozen=True)
class Saves:
    """What an op's backward keeps from a training forward pass (autograd's saved tensors), its parameters aside:
    some of its inputs (by position), its output, and tensors of its own (``extra``: elements per sample and
    bytes each, 0 for the activations' own dtype: a max pool's int64 indices; ``fixed``: the same, whatever the
    batch: a batch norm's means and inverse deviations, float32 for every dtype)."""

    inputs: tuple[int, ...] = ()
    output: bool = False
    extra: tuple[tuple[int, int], ...] = ()
    fixed: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class Makes:
    """The storages an op's forward makes in eval mode besides its output: the tensors a helper computes on the way
    (attention's queries, keys and values, scores and softmax, a gathered position bias; a standardised weight),
    counted as ``Saves`` counts its own: ``extra`` per sample, ``fixed`` whatever the batch (elements, and bytes
    each: 0 for the activations' dtype)."""

    extra: tuple[tuple[int, int], ...] = ()
    fixed: tuple[tuple[int, int], ...] = ()


NOTHING, INPUT, OUTPUT, BOTH = Saves(), Saves((0,)), Saves(output=True), Saves((0,), True)
INPUTS = Saves((0, 1, 2))  # every input it takes (matmul's two)


def _zero(a, t) -> int:
    return 0


def _zero_macs(a, t, o) -> int:
    return 0


@dataclass(frozen=True)
class OpKind:
    name: str
    args: type[Args]
    shape: Callable[[Args, TensorType], TensorType]
    layouts: tuple[str, ...] | None = ("CHW",)  # accepted input layouts (ANY: all)
    module: str | None = None  # the torch.nn class (or helper class) that does it
    modules: dict[str, str] = field(default_factory=dict)  # per input layout, where it differs from ``module``
    in_arg: bool | str = False  # the module takes the input's feature size (channels) first, or as this keyword
    functional: str | None = None  # the function that does it in forward ("" for identity); None: needs a module
    functional_extra: tuple[str, ...] = ()  # trailing arguments of that call
    params: Callable[[Args, TensorType], int] = _zero
    macs: Callable[[Args, TensorType, TensorType], int] = _zero_macs
    inplace: bool = False  # may be written inplace=True where its input is not shared
    inplace_if: Callable[[dict], bool] | None = None  # and only for argument values this holds for (constants)
    keeps_output: bool = False  # its backward reads its output: nothing may change that in place
    keeps_output_if: Callable[[dict], bool] | None = None  # and for these argument values (a fused relu or tanh)
    view: bool = False  # its output may be its input or a view of it: as fresh as the input was
    channels_from: str | None = None  # the argument that sets the output features; None: unchanged
    channels_rule: Callable | None = None  # (input features, {arg: expr}) -> output features, as expressions
    template: str | None = None  # forward-only form as a Python expression over {x} and the arguments
    call: str | None = None  # how forward calls the module, over {module} and {x}, where not ``{module}({x})``
    ctor_extra: tuple[str, ...] = ()  # trailing keyword arguments of the module's construction
    same_module: str | None = None  # the class where its padding is "same" (TensorFlow's) in some use: a helper
    same_functional: str | None = None  # and the function, unnamed: a helper that also takes padding="same"
    # the class where a statement gives one of these arguments (linear's zero_bias: a helper, an nn.Linear)
    arg_modules: dict[str, str] = field(default_factory=dict)
    learned: Callable[[Args, TensorType], tuple[int, ...]] | None = None  # a learned tensor of this shape
    learned_init: str | None = None  # the nn.Parameter's construction over {shape} and the arguments
    buffer: bool = False  # that tensor is a buffer (``register_buffer``), fixed, not a parameter (lookup's table)
    flattens: bool = False
    value: bool = False  # may be passed as a value (``activation = relu6``) and called without arguments
    make: Callable[[dict, TensorType], object] | None = None  # interpreter: its module or learned tensor
    run: Callable[..., object] | None = None  # interpreter: (module, args, input type, inputs, training) -> output
    label: Callable[[dict], str] | None = None  # diagrams: the op and its key arguments (``conv 7x7/2, 64``)
    # and, where what it does on an input differs from its arguments (Swin's shift is off where one window covers
    # the map), (arguments, input shapes) -> (the arguments in effect, a note saying why, or None)
    effective: Callable[[dict, tuple], tuple[dict, str | None]] | None = None
    doc: str = ""
    # the tensors it takes (its shape rule gets a tuple of their types where not 1; 0: a list): more than one only
    # in the lets of blocks with named tensors
    inputs: int = 1
    optional_inputs: int = 0  # more tensors it may take after those (attention's additive mask)
    # the names of its operands where each may be a tensor or a number (where's condition, input and other): the
    # tensors are its inputs, in order; a number is the argument of its operand's name (None where a tensor)
    operands: tuple[str, ...] = ()
    # an op that gives several tensors (split), named by a let in a block with named tensors: its ``index`` argument
    # picks each one's part, and this says how many there are from its arguments
    outputs: Callable[[Args], int] | None = None
    sym: Callable | None = None  # (arguments as expressions, symbolic input shape(s)) -> symbolic output shape
    training_only: tuple[str, ...] = ()  # arguments that apply in training only (attention's dropout_p)
    # deployment (``archc.deploy``): the kinds whose output it may fold into when it reads theirs alone (a batch
    # norm into the conv or linear before it: scaled weights and a bias), and whether it is the identity in eval
    # (dropout, stochastic depth: an inference model leaves it out)
    folds_into: tuple[str, ...] = ()
    eval_identity: bool = False
    # fusing (``archc.deploy``): an activation's oneDNN post-op, (name, scalars, algorithm), which a conv applies as
    # it writes its output; the kind a layer becomes with such an activation after it (a conv: ``conv_act``)
    post_op: tuple[str, tuple[float, ...], str] | None = None
    fuses_into: str | None = None
    # and whether that kind's module keeps its weights in oneDNN's blocked layout (``conv_act``): then deploy writes it
    # for every layer of the kinds that fuse into it, with an activation after it or not
    packs: bool = False
    # statistics (``archc stats``): what backward keeps (a ``Saves``, or a function of the arguments, the input
    # shapes and the output shape giving one; None: not yet said, which tests/test_stats_memory.py refuses); the
    # buffers its module holds, as ``Saves.extra`` counts them but per model, not per sample (batch norm's running
    # statistics and its int64 step count)
    saves: Saves | Callable[[dict, tuple, tuple], Saves] | None = None
    buffers: Callable[[dict, tuple, tuple], tuple[tuple[int, int], ...]] | None = None
    # and what its forward makes besides its output, a function of the same three (None: nothing)
    makes: Callable[[dict, tuple, tuple], Makes] | None = None
    # and how torch lays out a view's output, where ``view`` does not say it all: a view only where its input lies in
    # order, a copy otherwise (``reshapes``: reshape, flatten); a view whose elements do not lie in order
    # (``scatters``: a transpose, a slice); a view in torch although the code generator treats its output as new
    # (``torch_view``: to_map's reshape only splits the tokens into rows and columns; chunk and subsample slice)
    reshapes: bool = False
    scatters: bool = False
    torch_view: bool = False

    # initialisation (``init KIND.PARAM = ...``): the parameters its module may have; those it has, a function of its
    # arguments where some may be absent (a conv without bias; None: all of them); and the sizes of a layer that a
    # rule's arguments may read (``fan_in``, ``num_features``, ...; ``ops.initsizes``), a function of its arguments,
    # its input's shape and its output's type
    init_params: tuple[str, ...] = ()
    init_has: Callable[[dict], tuple[str, ...]] | None = None
    init_sizes: Callable[[dict, tuple, TensorType], dict] | None = None

    def keeps(self, args: dict) -> bool:
        """Whether its backward reads its output, with these argument values."""
        return self.keeps_output or (self.keeps_output_if is not None and self.keeps_output_if(args))

    @property
    def views_in_torch(self) -> bool:
        """Whether torch may give its output as a view of its input (a storage ``archc stats`` does not count)."""
        return self.view or self.torch_view

    @property
    def has_params(self) -> bool:
        return (self.functional is None and self.template is None) or self.learned is not None

    @cached_property
    def positional(self) -> list[str]:
        return list(self.args.model_fields)

    def module_for(self, layout: str) -> str | None:
        return self.modules.get(layout, self.module)


def axis(dim: int, rank: int, what: str = "dim") -> int:
    """The axis ``dim`` (torch's count: batch 0, or from the end) as an index into the shape without the batch."""
    hint = f"{what} counts the batch as 0: here 1 to {rank} (or -1 to -{rank})"
    if dim in (0, -rank - 1):
        raise ShapeError(f"{what} {dim} is the batch, which this op leaves alone", hint=hint)
    if not -rank <= dim <= rank:
        raise ShapeError(f"{what} {dim} is out of range for a tensor of {rank} dimensions and the batch", hint=hint)
    return dim - 1 if dim > 0 else rank + dim


def sym_axis(dim, rank: int) -> int | None:
    """``axis`` for a ``dim`` as the code generator knows it (a number, or the expression written: ``1``, ``-1``):
    None where it is not a number, or not an axis."""
    from ..lang import nodes as n

    if isinstance(dim, n.UnaryOp) and dim.op == "-" and isinstance(dim.operand, n.Num):  # -1, as written
        dim = -dim.operand.value
    elif isinstance(dim, n.Num):
        dim = dim.value
    if not isinstance(dim, int) or isinstance(dim, bool):
        return None
    try:
        return axis(dim, rank)
    except ShapeError:
        return None


def pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (v[0], v[1])


def _same(a, t: TensorType) -> TensorType:
    return t


REGISTRY: dict[str, OpKind] = {}


def _register(kind: OpKind) -> None:
    REGISTRY[kind.name] = kind


class NoArgs(Args):
    pass


# ------------------------------------------------------------ diagram labels


def size_text(v) -> str:
    """``3x3`` for 3 or (3, 3), ``1x7`` for (1, 7)."""
    if isinstance(v, (tuple, list)):
        return "x".join(map(str, v)) if len(set(v)) > 1 else f"{v[0]}x{v[0]}"
    return f"{v}x{v}"


def one(v):
    """A pair of equal values as one."""
    if isinstance(v, (tuple, list)) and len(set(v)) == 1:
        return v[0]
    return v


def stride_text(v) -> str:
    return size_text(v) if isinstance(v, (tuple, list)) else str(v)
