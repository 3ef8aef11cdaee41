"""The helpers of TensorFlow's "same" padding (``padding = "same"`` on ``conv`` and ``ws_conv``), written into a
generated module that uses them: the convs take ``padding="same"`` at any stride, as timm's ``Conv2dSame`` and
``ScaledStdConv2dSame`` do, and keep nn.Conv2d's parameter names."""

PAD_HELPERS = {
    "_pad_same": '''def _pad_same(x: Tensor, kernel_size: tuple[int, ...], stride: tuple[int, ...],
              dilation: tuple[int, ...]) -> Tensor:
    """``x`` padded with zeros as TensorFlow's "same" pads it for a conv of these sizes: to ceil(size / stride)
    outputs along each side, the odd row or column at the bottom or right (timm's pad_same).
    """
    pad = []
    for size, k, s, d in zip(x.shape[:1:-1], kernel_size[::-1], stride[::-1], dilation[::-1]):
        total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
        pad += [total // 2, total - total // 2]
    return F.pad(x, pad)''',
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
