"""The helpers of TensorFlow's "same" padding (``padding = "same"`` on ``conv``, ``ws_conv``, ``maxpool`` and
``avgpool``), written into a generated module that uses them: the convs take ``padding="same"`` at any stride, as
timm's ``Conv2dSame`` and ``ScaledStdConv2dSame`` do, and keep nn.Conv2d's parameter names; the pools, as modules
or functions, as timm's ``MaxPool2dSame`` and ``AvgPool2dSame`` do (padded by the input's size in forward, with
-inf before a max, with zeros that an average counts)."""

PAD_HELPERS = {
    "_pad_same": '''def _pad_same(x: Tensor, kernel_size: tuple[int, ...], stride: tuple[int, ...],
              dilation: tuple[int, ...], value: float = 0.0) -> Tensor:
    """``x`` padded with ``value`` as TensorFlow's "same" pads it for a conv or pool of these sizes: to
    ceil(size / stride) outputs along each side, the odd row or column at the bottom or right (timm's pad_same).
    """
    pad = []
    for size, k, s, d in zip(x.shape[:1:-1], kernel_size[::-1], stride[::-1], dilation[::-1]):
        total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
        pad += [total // 2, total - total // 2]
    return F.pad(x, pad, value=value)''',
    "_same_padding": '''def _same_padding(conv: nn.Conv2d, padding) -> bool:
    """Whether ``conv``, given ``padding``, must pad each input by its size before it convolves (padding="same" at
    a stride above 1, or with an even span); where "same" pads evenly whatever the size, it sets the conv's own
    padding to that, as timm does.
    """
    if padding != "same":
        return False
    if all(s == 1 and d * (k - 1) % 2 == 0 for k, s, d in zip(conv.kernel_size, conv.stride, conv.dilation)):
        conv.padding = tuple(d * (k - 1) // 2 for k, d in zip(conv.kernel_size, conv.dilation))
        return False
    return True''',
}


def _same_class(cls: str, base: str, theirs: str) -> str:
    """A conv class ``base`` that also takes padding="same" (timm's ``theirs``)."""
    return f'''class {cls}({base}):
    """{base} that also takes padding="same", TensorFlow's, at any stride (timm's {theirs})."""

    def __init__(self, *args, padding=0, **kwargs) -> None:
        super().__init__(*args, padding=0 if padding == "same" else padding, **kwargs)
        self.pad_input = _same_padding(self, padding)

    def forward(self, x: Tensor) -> Tensor:
        if self.pad_input:
            x = _pad_same(x, self.kernel_size, self.stride, self.dilation)
        return super().forward(x)'''


PAD_HELPERS["_Conv2dSame"] = _same_class("_Conv2dSame", "nn.Conv2d", "Conv2dSame")
PAD_HELPERS["_WSConv2dSame"] = _same_class("_WSConv2dSame", "_WSConv2d", "ScaledStdConv2dSame")


PAD_HELPERS["_pad_pool_same"] = '''def _pad_pool_same(x: Tensor, kernel_size, stride, dilation, value: float) -> Tensor:
    """``x`` padded as TensorFlow's "same" pads it for a pool of these sizes (each a number or a pair; the stride
    None: the kernel size), with ``value``: -inf before a max, 0 before an average.
    """
    sizes = [v if isinstance(v, (tuple, list)) else (v, v) for v in (kernel_size, stride or kernel_size, dilation)]
    return _pad_same(x, *sizes, value=value)'''
PAD_HELPERS["_max_pool2d_same"] = '''def _max_pool2d_same(x: Tensor, kernel_size, stride=None, padding=0, dilation=1,
                     ceil_mode: bool = False) -> Tensor:
    """F.max_pool2d that also takes padding="same", TensorFlow's: the input padded by its size with -inf, the odd
    row or column at the bottom or right (timm's max_pool2d_same).
    """
    if padding == "same":
        x, padding = _pad_pool_same(x, kernel_size, stride, dilation, float("-inf")), 0
    return F.max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode)'''
PAD_HELPERS["_avg_pool2d_same"] = '''def _avg_pool2d_same(x: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                     count_include_pad: bool = True) -> Tensor:
    """F.avg_pool2d that also takes padding="same", TensorFlow's: the input padded by its size with zeros, which
    each window's average counts whatever count_include_pad says (timm's avg_pool2d_same).
    """
    if padding == "same":
        x, padding = _pad_pool_same(x, kernel_size, stride, 1, 0.0), 0
    return F.avg_pool2d(x, kernel_size, stride, padding, ceil_mode, count_include_pad)'''


def _same_pool(cls: str, base: str, value: str, dilation: str) -> str:
    """A pool class ``base`` that also takes padding="same" (timm's ``cls`` without the underscore), padding with
    ``value``."""
    return f'''class {cls}({base}):
    """{base} that also takes padding="same", TensorFlow's, at any stride (timm's {cls[1:]})."""

    def __init__(self, *args, padding=0, **kwargs) -> None:
        super().__init__(*args, padding=0 if padding == "same" else padding, **kwargs)
        self.pad_input = padding == "same"

    def forward(self, x: Tensor) -> Tensor:
        if self.pad_input:
            x = _pad_pool_same(x, self.kernel_size, self.stride, {dilation}, {value})
        return super().forward(x)'''


PAD_HELPERS["_MaxPool2dSame"] = _same_pool("_MaxPool2dSame", "nn.MaxPool2d", 'float("-inf")', "self.dilation")
PAD_HELPERS["_AvgPool2dSame"] = _same_pool("_AvgPool2dSame", "nn.AvgPool2d", "0.0", "1")
