"""The generated helpers of windowed and partitioned attention: Swin's window attention on a channels-last map
and its patch merging, MaxViT's partitions into windows or grids and its attention within them. Written out only
in a module that uses them (see helpers.py)."""

WINDOW_HELPERS = {
    "_patch_merge": '''def _patch_merge(x: Tensor) -> Tensor:
    """Space to depth on an N x H x W x C map: the four positions of each 2 x 2 patch side by side in
    the channels (top left, bottom left, top right, bottom right), an odd side padded with zeros.
    """
    x = F.pad(x, (0, 0, 0, x.shape[2] % 2, 0, x.shape[1] % 2))
    return torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)''',
    "_WindowAttention": '''class _WindowAttention(nn.Module):
    """Multi-head self-attention within windows of an N x H x W x C map (Swin). The map is padded to
    whole windows and, with a shift, rolled up and left by ``shift_size`` so that the windows straddle
    the previous layer's; positions the roll brought together from opposite edges are masked apart.
    Each window's tokens attend to each other with a learned bias per relative position. Version 2
    (Swin V2) uses scaled cosine attention with a learned logit scale per head, and makes the bias with
    a small MLP from log-spaced relative coordinates.
    """

    def __init__(
        self,
        dim: int,
        window_size: int | tuple[int, int],
        num_heads: int,
        shift_size: int | tuple[int, int] = 0,
        version: int = 1,
        attention_dropout: float = 0.0,
        dropout: float = 0.0,
        qkv_bias: bool = True,
        proj_bias: bool = True,
    ) -> None:
        super().__init__()
        wh, ww = self.window_size = [window_size] * 2 if isinstance(window_size, int) else list(window_size)
        self.shift_size = [shift_size] * 2 if isinstance(shift_size, int) else list(shift_size)
        self.num_heads, self.version = num_heads, version
        self.attention_dropout, self.dropout = attention_dropout, dropout
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim, bias=proj_bias)
        if version == 1:  # a learned bias per relative position and head
            self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * wh - 1) * (2 * ww - 1), num_heads))
            nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        else:  # relative coordinates, scaled to [-8, 8] and log-spaced, for the bias MLP
            dh = torch.arange(-(wh - 1), wh, dtype=torch.float32) / (wh - 1) * 8
            dw = torch.arange(-(ww - 1), ww, dtype=torch.float32) / (ww - 1) * 8
            table = torch.stack(torch.meshgrid(dh, dw, indexing="ij"), -1).unsqueeze(0)
            self.register_buffer("relative_coords_table", torch.sign(table) * torch.log2(table.abs() + 1.0) / 3.0)
        rows, cols = torch.arange(wh).repeat_interleave(ww), torch.arange(ww).repeat(wh)
        index = (rows[:, None] - rows[None, :] + wh - 1) * (2 * ww - 1) + cols[:, None] - cols[None, :] + ww - 1
        self.register_buffer("relative_position_index", index.flatten())  # the table row of each token pair
        if version == 2:
            self.logit_scale = nn.Parameter(torch.log(10 * torch.ones((num_heads, 1, 1))))
            self.cpb_mlp = nn.Sequential(nn.Linear(2, 512), nn.ReLU(inplace=True), nn.Linear(512, num_heads, bias=False))
            if qkv_bias:
                with torch.no_grad():
                    self.qkv.bias[dim : 2 * dim].zero_()

    def position_bias(self) -> Tensor:
        """1 x heads x N x N, N the tokens of a window."""
        n = self.window_size[0] * self.window_size[1]
        if self.version == 1:
            table = self.relative_position_bias_table
        else:
            table = self.cpb_mlp(self.relative_coords_table).view(-1, self.num_heads)
        bias = table[self.relative_position_index].view(n, n, -1).permute(2, 0, 1).unsqueeze(0)
        return bias if self.version == 1 else 16 * torch.sigmoid(bias)

    def shift_mask(self, height: int, width: int, shift: tuple[int, int], like: Tensor) -> Tensor:
        """windows x N x N: -100 between tokens of one window that the roll brought from different regions."""
        (wh, ww), (sh, sw) = self.window_size, shift
        rows = torch.zeros(height, dtype=torch.long, device=like.device)
        cols = torch.zeros(width, dtype=torch.long, device=like.device)
        if sh:
            rows[height - wh : height - sh], rows[height - sh :] = 1, 2
        if sw:
            cols[width - ww : width - sw], cols[width - sw :] = 1, 2
        region = (rows[:, None] * 3 + cols[None, :]).view(height // wh, wh, width // ww, ww)
        region = region.permute(0, 2, 1, 3).reshape(-1, wh * ww)
        apart = region[:, None, :] != region[:, :, None]
        return torch.zeros(apart.shape, dtype=like.dtype, device=like.device).masked_fill(apart, -100.0)

    def forward(self, x: Tensor) -> Tensor:
        n, h, w, c = x.shape
        (wh, ww), heads = self.window_size, self.num_heads
        x = F.pad(x, (0, 0, 0, (ww - w % ww) % ww, 0, (wh - h % wh) % wh))
        height, width = x.shape[1], x.shape[2]
        # no shift along a side that one window covers
        shift = (self.shift_size[0] if wh < height else 0, self.shift_size[1] if ww < width else 0)
        if shift[0] or shift[1]:
            x = torch.roll(x, shifts=(-shift[0], -shift[1]), dims=(1, 2))
        windows = (height // wh) * (width // ww)
        t = x.view(n, height // wh, wh, width // ww, ww, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, wh * ww, c)
        bias = self.qkv.bias
        if self.version == 2 and bias is not None:  # V2 learns no key bias
            bias = torch.cat([bias[:c], torch.zeros_like(bias[c : 2 * c]), bias[2 * c :]])
        qkv = F.linear(t, self.qkv.weight, bias).reshape(t.shape[0], wh * ww, 3, heads, c // heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        if self.version == 2:  # cosine similarity, scaled by at most 100
            attn = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
            attn = attn * torch.clamp(self.logit_scale, max=4.605170185988092).exp()
        else:
            attn = (q * (c // heads) ** -0.5) @ k.transpose(-2, -1)
        attn = attn + self.position_bias()
        if shift[0] or shift[1]:
            mask = self.shift_mask(height, width, shift, attn)
            attn = (attn.view(n, windows, heads, wh * ww, wh * ww) + mask[None, :, None]).view(-1, heads, wh * ww, wh * ww)
        attn = F.dropout(attn.softmax(-1), self.attention_dropout, self.training)
        t = (attn @ v).transpose(1, 2).reshape(-1, wh * ww, c)
        t = F.dropout(self.proj(t), self.dropout, self.training)
        x = t.view(n, height // wh, width // ww, wh, ww, c).permute(0, 1, 3, 2, 4, 5).reshape(n, height, width, c)
        if shift[0] or shift[1]:
            x = torch.roll(x, shifts=shift, dims=(1, 2))
        return x[:, :h, :w].contiguous()''',
    "_relative_coords_table": '''def _relative_coords_table(window_size: int | tuple[int, int], scale: float = 8.0) -> Tensor:
    """1 x (2 wh - 1) x (2 ww - 1) x 2: the offset (dy, dx) between two tokens of a wh x ww window, each over
    (wh - 1, ww - 1), times ``scale``, log-spaced as sign(t) * log2(1 + |t|) / log2(scale) (Swin V2's
    relative_coords_table, float32).
    """
    wh, ww = (window_size, window_size) if isinstance(window_size, int) else window_size
    dy = torch.arange(-(wh - 1), wh, dtype=torch.float32) / (wh - 1) * scale
    dx = torch.arange(-(ww - 1), ww, dtype=torch.float32) / (ww - 1) * scale
    table = torch.stack(torch.meshgrid(dy, dx, indexing="ij"), -1).unsqueeze(0)
    return torch.sign(table) * torch.log2(table.abs() + 1.0) / math.log2(scale)''',
    "_LinearZeroedBias": '''class _LinearZeroedBias(nn.Linear):
    """nn.Linear whose bias entries ``zero_bias[0]`` up to ``zero_bias[1]`` count as 0, whatever the parameter
    holds, so they never learn: torchvision's Swin V2 applies its qkv so, the keys without a bias.
    """

    def __init__(self, *args, zero_bias: tuple[int, int] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.zero_bias = zero_bias
        if zero_bias is not None and self.bias is not None:
            with torch.no_grad():
                self.bias[zero_bias[0] : zero_bias[1]].zero_()

    def forward(self, x: Tensor) -> Tensor:
        bias = self.bias
        if self.zero_bias is not None and bias is not None:
            start, stop = self.zero_bias
            bias = torch.cat([bias[:start], torch.zeros_like(bias[start:stop]), bias[stop:]])
        return F.linear(x, self.weight, bias)''',
}

PARTITION_HELPERS = {
    "_partition": '''def _partition(x: Tensor, size: int, kind: str) -> Tensor:
    """A square N x C x H x W map as groups of tokens, N x G x L x C: windows of size x size neighbouring
    positions ("window"), or size x size positions spread over the map on a regular grid ("grid").
    """
    n, c, h, w = x.shape
    p = size if kind == "window" else h // size
    x = x.reshape(n, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1).reshape(n, (h // p) * (w // p), p * p, c)
    return x if kind == "window" else x.transpose(1, 2)''',
    "_departition": '''def _departition(x: Tensor, size: int, kind: str) -> Tensor:
    """``_partition`` undone: N x G x L x C groups back into the N x C x H x W map."""
    if kind == "grid":
        x = x.transpose(1, 2)
    n, groups, tokens, c = x.shape
    p, cells = round(tokens**0.5), round(groups**0.5)
    x = x.reshape(n, cells, cells, p, p, c).permute(0, 5, 1, 3, 2, 4).reshape(n, c, cells * p, cells * p)
    return x.contiguous()  # a plain N x C x H x W map, whatever the groups' strides were''',
    "_RelativeAttention": '''class _RelativeAttention(nn.Module):
    """Multi-head self-attention among the tokens of each group of an N x G x L x D tensor, L the
    positions of a size x size partition, with a learned bias per relative position and head (MaxViT's;
    the keys are scaled by D ** -0.5, as there).
    """

    def __init__(self, dim: int, head_dim: int, size: int) -> None:
        super().__init__()
        self.num_heads, self.head_dim, self.size = dim // head_dim, head_dim, size
        self.to_qkv = nn.Linear(dim, 3 * dim)
        self.scale = dim**-0.5
        self.merge = nn.Linear(dim, dim)
        self.relative_position_bias_table = nn.Parameter(torch.empty((2 * size - 1) ** 2, self.num_heads))
        rows, cols = torch.arange(size).repeat_interleave(size), torch.arange(size).repeat(size)
        index = (rows[:, None] - rows[None, :] + size - 1) * (2 * size - 1) + cols[:, None] - cols[None, :] + size - 1
        self.register_buffer("relative_position_index", index)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x: Tensor) -> Tensor:
        n, g, length, d = x.shape
        q, k, v = (
            t.reshape(n, g, length, self.num_heads, self.head_dim).transpose(2, 3) for t in self.to_qkv(x).chunk(3, -1)
        )
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        bias = bias.view(length, length, -1).permute(2, 0, 1).unsqueeze(0)
        attn = (torch.einsum("bghid,bghjd->bghij", q, k * self.scale) + bias).softmax(-1)
        return self.merge(torch.einsum("bghij,bghjd->bghid", attn, v).transpose(2, 3).reshape(n, g, length, d))''',
}
