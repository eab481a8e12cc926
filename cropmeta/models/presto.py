"""Presto, the pretrained remote-sensing time-series transformer (Tseng et al. 2023,
"Lightweight, Pre-trained Transformers for Remote Sensing Timeseries"), re-implemented from its
published description (weights: MIT, "Copyright (c) 2024 Presto Authors").

Only the encoder is built: it turns a pixel's monthly series into one 128-number embedding.

- **Inputs** (:func:`presto_inputs` builds them from cropmeta's canonical samples ``[N, T, 18]``):
  17 normalised bands (the canonical bands without B9), a Dynamic World class per step (9 =
  missing, masked), a mask of the same shape as the bands (1 = missing), the pixel's (lat, lon) and
  the calendar month (0 = January) of each step.
- **Tokens**: one per (band group, step) for the eight time-varying groups of :data:`BAND_GROUPS`,
  one for the static SRTM group (step 0 only), one Dynamic World token per step and one lat/lon token
  (the point on the unit sphere). Each group has its own linear embedding; the time-varying tokens add
  ``[month (32) | channel (32) | position (64)]`` encodings, the SRTM token only the channel part.
- A token is masked when any band of its group is missing at that step; masked tokens take no part
  in attention or pooling.
- **Encoder**: 2 pre-norm transformer blocks (width 128, 8 heads, MLP 512 with exact GELU), the mean
  of the unmasked tokens (lat/lon included), then a final LayerNorm.

The input layout and :func:`presto_inputs` live in :mod:`cropmeta.models.presto_layout` (their
names stay importable from here). Weights load from safetensors (:func:`load_presto`); the published ``.pt`` file is read only with
``torch.load(weights_only=True)`` after its SHA-256 matches the published one
(:data:`cropmeta.models.published.PRESTO`).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cropmeta.errors import InputError
from cropmeta.models.presto_layout import (
    BAND_GROUPS, DEFAULT_START_MONTH, DW_MISSING, DW_ROW, MAX_T, PRESTO_BANDS, PRESTO_INDEX, STATIC_GROUP, PrestoInputs,
)

__all__ = ["Attention", "PrestoEncoder", "DEPTH", "CPU_BATCH", "default_batch", "load_presto", "read_presto_state"]


D_MODEL, N_HEADS, MLP_HIDDEN, DEPTH = 128, 8, 512, 2


# --------------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------------
class Attention(nn.Module):
    """Multi-head self-attention over the tokens, masked tokens excluded as keys."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, h: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        b, n, d = h.shape
        q, k, v = self.qkv(h).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        # softmax(q kᵀ / √dh, masked keys at -inf) v in one fused kernel: on CPU twice as fast as
        # :meth:`reference` (tests/test_presto_speed.py: equal to 1e-5). In float32 under bfloat16
        # autocast too: torch's bfloat16 kernel is slower at these sizes (98 tokens, 16 per head)
        with torch.autocast(h.device.type, enabled=False):
            out = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=keep[:, None, None, :])
        return self.proj(out.transpose(1, 2).reshape(b, n, d))

    def reference(self, h: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """The same attention written out (scores, key mask, softmax, product): what :meth:`forward`
        is tested against, and the "before" of ``benchmarks/bench_presto.py``."""
        b, n, d = h.shape
        q, k, v = self.qkv(h).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(d // self.heads)
        scores = scores.masked_fill(~keep[:, None, None, :], float("-inf"))
        return self.proj((scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, n, d))


class _MLP(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(h)))


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = _MLP(dim, hidden)

    def forward(self, h: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        h = h + self.attn(self.norm1(h), keep)
        return h + self.mlp(self.norm2(h))


class PrestoEncoder(nn.Module):
    """The Presto encoder. Parameter names follow the published checkpoint's ``encoder.*`` keys, so
    its state dict loads strictly (:func:`load_presto`)."""

    def __init__(self):
        super().__init__()
        d = D_MODEL
        self.d_month = self.d_channel = d // 4
        self.d_pos = d - self.d_month - self.d_channel
        self.eo_patch_embed = nn.ModuleDict({g: nn.Linear(len(b), d) for g, b in BAND_GROUPS.items()})
        self.dw_embed = nn.Embedding(DW_MISSING + 1, d)
        self.latlon_embed = nn.Linear(3, d)
        self.blocks = nn.ModuleList([_Block(d, N_HEADS, MLP_HIDDEN) for _ in range(DEPTH)])
        self.norm = nn.LayerNorm(d)
        # frozen sinusoidal tables (stored in the checkpoint too)
        self.pos_embed = nn.Parameter(_position_table(MAX_T, self.d_pos)[None], requires_grad=False)
        self.month_embed = nn.Embedding(12, self.d_month)
        self.month_embed.weight = nn.Parameter(_month_table(self.d_month), requires_grad=False)
        self.channel_embed = nn.Embedding(DW_ROW + 1, self.d_channel)
        self._group_idx = {g: [PRESTO_INDEX[b] for b in bands] for g, bands in BAND_GROUPS.items()}

    def tokens(self, x, dynamic_world, latlons, mask=None, month=DEFAULT_START_MONTH):
        """(tokens ``[B, L, 128]``, keep ``[B, L]`` bool): the lat/lon token first, then every
        time-varying group's T tokens in :data:`BAND_GROUPS` order with the single SRTM token in its
        place, then the Dynamic World tokens. Masked tokens are zeroed and have ``keep = False``."""
        b, t, nb = x.shape
        if nb != len(PRESTO_BANDS):
            raise InputError(f"Presto input: last axis is {nb}, expected {len(PRESTO_BANDS)} bands {PRESTO_BANDS}")
        if not 1 <= t <= MAX_T:
            raise InputError(f"Presto input: {t} time steps; the model takes 1 to {MAX_T}")
        dev = x.device
        months = _months_tensor(month, b, t, dev)
        m = torch.zeros_like(x, dtype=torch.bool) if mask is None else mask.to(dev).bool()
        month_enc = self.month_embed(months)  # [B, T, 32]
        pos = self.pos_embed[0, :t].to(x.dtype).expand(b, t, self.d_pos)
        ch = self.channel_embed.weight
        toks, keeps = [self.latlon_embed(_sphere(latlons.to(x.dtype)))[:, None]], [torch.ones(b, 1, dtype=torch.bool,
                                                                                               device=dev)]
        for row, (g, idx) in enumerate(self._group_idx.items()):
            lin = self.eo_patch_embed[g]
            if g == STATIC_GROUP:
                enc = torch.cat([torch.zeros(self.d_month, device=dev, dtype=x.dtype), ch[row],
                                 torch.zeros(self.d_pos, device=dev, dtype=x.dtype)])
                toks.append((lin(x[:, 0, idx]) + enc)[:, None])
                keeps.append(~m[:, 0, idx].any(-1, keepdim=True))
                continue
            enc = torch.cat([month_enc, ch[row].expand(b, t, self.d_channel), pos], dim=-1)
            toks.append(lin(x[:, :, idx]) + enc)
            keeps.append(~m[:, :, idx].any(-1))
        dw = dynamic_world.to(dev).long()
        enc = torch.cat([month_enc, ch[DW_ROW].expand(b, t, self.d_channel), pos], dim=-1)
        toks.append(self.dw_embed(dw) + enc)
        keeps.append(dw != DW_MISSING)
        h, keep = torch.cat(toks, dim=1), torch.cat(keeps, dim=1)
        return torch.where(keep[..., None], h, torch.zeros((), dtype=h.dtype, device=dev)), keep

    def forward(self, x, dynamic_world, latlons, mask=None, month=DEFAULT_START_MONTH) -> torch.Tensor:
        """The pooled embedding ``[B, 128]``. ``x [B, T, 17]`` normalised (:func:`presto_inputs`),
        ``dynamic_world [B, T]`` int (9 = missing), ``latlons [B, 2]`` degrees (lat, lon),
        ``mask [B, T, 17]`` (1 = missing) or None, ``month``: an int or ``[B]`` (month of the first
        step, 0 = January; step t gets ``(month + t) mod 12``) or ``[B, T]`` (each step's month)."""
        h, keep = self.hidden(x, dynamic_world, latlons, mask, month, blocks=DEPTH)
        return self.pool(h, keep)

    def hidden(self, x, dynamic_world, latlons, mask=None, month=DEFAULT_START_MONTH, blocks: int = DEPTH,
               batch_size: int | None = None):
        """(tokens after the first ``blocks`` transformer blocks, keep): :meth:`tokens` without the
        token slots masked in every sample of the batch (they change nothing: masked tokens take no
        part in attention or pooling), then ``blocks`` blocks, ``batch_size`` samples at a time (None:
        all at once). ``presto-ft`` caches this for its frozen blocks and trains the rest (:meth:`finish`)."""
        h, keep = self.tokens(x, dynamic_world, latlons, mask, month)
        cols = keep.any(0)
        if not bool(cols.all()):  # token slots masked in every sample (e.g. Dynamic World): skip them
            h, keep = h[:, cols], keep[:, cols]
        if not blocks:
            return h, keep
        step = len(h) if batch_size is None else max(1, int(batch_size))
        parts = []
        for i in range(0, len(h), step):
            part, k = h[i : i + step], keep[i : i + step]
            for blk in self.blocks[:blocks]:
                part = blk(part, k)
            parts.append(part)
        return torch.cat(parts), keep

    def finish(self, h: torch.Tensor, keep: torch.Tensor, start: int) -> torch.Tensor:
        """The embedding from the output of the first ``start`` blocks (:meth:`hidden`): the other
        blocks, then the pooling."""
        for blk in self.blocks[start:]:
            h = blk(h, keep)
        return self.pool(h, keep)

    def pool(self, h: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """The mean of the kept tokens, then the final LayerNorm: ``[B, 128]``."""
        w = keep.to(h.dtype)[..., None]
        pooled = (h * w).sum(1) / w.sum(1)
        return self.norm(pooled)

    @torch.no_grad()
    def embed(self, inputs: PrestoInputs, batch_size: int | None = None, device: str | torch.device | None = None,
              precision: str = "fp32") -> np.ndarray:
        """Embeddings ``[N, 128]`` float32 of :class:`PrestoInputs`, in batches (default
        :func:`default_batch` of the device), in eval mode. ``precision="bf16"``: the linear layers in
        bfloat16 (autocast; attention, LayerNorm and pooling in float32) — use it only where the
        hardware has native bfloat16 and a check such as
        :func:`cropmeta.mapping.precision.check_reduced_precision` passed."""
        from cropmeta.models.inference import precision_context

        was = self.training
        self.eval()
        dev = torch.device(device) if device is not None else next(self.parameters()).device
        batch_size = int(batch_size or default_batch(dev))
        out = []
        try:
            with precision_context(precision, dev):
                for i in range(0, len(inputs), batch_size):
                    part = inputs[i : i + batch_size].tensors(dev)
                    out.append(self(*part).float().cpu().numpy())
        finally:
            self.train(was)
        return np.concatenate(out) if out else np.zeros((0, D_MODEL), dtype=np.float32)


#: pixels per encoder forward pass. On CPU small batches keep each layer's attention scores (batch ×
#: heads × tokens²) in cache: on the 2-core EPYC, 1 thread, ``benchmarks/bench_presto.py --batch B``
#: gave 370–420 px/s for B = 16–64 against 180–200 px/s for 4,096 (docs/presto.md). GPUs want large batches.
CPU_BATCH, GPU_BATCH = 64, 4096


def default_batch(device: str | torch.device | None) -> int:
    """Pixels per Presto forward pass on ``device``: :data:`CPU_BATCH` on CPU, :data:`GPU_BATCH` otherwise."""
    return CPU_BATCH if device is None or torch.device(device).type == "cpu" else GPU_BATCH


def _position_table(n: int, d: int) -> torch.Tensor:
    """Row p: sin/cos of p / 1000^(2⌊i/2⌋/d) (even i sin, odd i cos)."""
    p = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(d, dtype=torch.float64)
    ang = p / torch.pow(1000.0, 2 * torch.div(i, 2, rounding_mode="floor") / d)
    return torch.where(i.long() % 2 == 0, torch.sin(ang), torch.cos(ang)).float()


def _month_table(d: int) -> torch.Tensor:
    """Row m: d/2 copies of sin(2πm/12), then d/2 copies of cos(2πm/12)."""
    th = 2 * math.pi * torch.arange(12, dtype=torch.float64)[:, None] / 12
    return torch.cat([torch.sin(th).expand(12, d // 2), torch.cos(th).expand(12, d // 2)], dim=1).float()


def _sphere(latlons: torch.Tensor) -> torch.Tensor:
    lat, lon = torch.deg2rad(latlons[:, 0]), torch.deg2rad(latlons[:, 1])
    return torch.stack([torch.cos(lat) * torch.cos(lon), torch.cos(lat) * torch.sin(lon), torch.sin(lat)], dim=-1)


def _months_tensor(month, b: int, t: int, dev) -> torch.Tensor:
    m = torch.as_tensor(month, device=dev).long()
    if m.ndim == 0:
        m = m.expand(b)
    if m.ndim == 1:
        if len(m) != b:
            raise InputError(f"Presto input: {len(m)} start months for {b} samples")
        m = (m[:, None] + torch.arange(t, device=dev)) % 12
    if m.shape != (b, t):
        raise InputError(f"Presto input: months shaped {list(m.shape)}, expected [{b}] or [{b}, {t}]")
    if bool(((m < 0) | (m > 11)).any()):
        raise InputError("Presto input: months must be 0 (January) to 11")
    return m


# --------------------------------------------------------------------------------------------------
# Loading weights
# --------------------------------------------------------------------------------------------------
def read_presto_state(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError, RuntimeError) as e:
            raise InputError(f"{path}: not a readable safetensors file ({e})") from e
    if path.suffix == ".pt":
        from cropmeta.provenance import sha256_file
        from cropmeta.models.published import PRESTO

        digest = sha256_file(path)
        if digest != PRESTO.sha256:
            raise InputError(f"{path}: SHA-256 {digest[:16]}… is not the published Presto checkpoint's "
                             f"({PRESTO.sha256[:16]}…); cropmeta reads .pt files only when it matches "
                             "(use a .safetensors file otherwise)")
        try:
            return torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any failure of the restricted loader is one clear line
            raise InputError(f"{path}: not a readable weights-only torch checkpoint ({e})") from e
    raise InputError(f"{path}: Presto weights must be a .safetensors file (or the published .pt)")


def load_presto(path: str | Path | None = None, device: str | torch.device = "cpu") -> PrestoEncoder:
    """The Presto encoder with pretrained weights, in eval mode. ``path``: a ``.safetensors`` file
    (the published keys, ``encoder.*``) or the published ``default_model.pt``; None → the copy that
    ``cropmeta models download presto`` cached in the workspace."""
    if path is None:
        from cropmeta.models.published import PRESTO, cached_weights

        path = cached_weights(PRESTO)
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: Presto weights not found (run `cropmeta models download presto` "
                         "or pass --weights PATH)")
    state = read_presto_state(path)
    enc = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
    model = PrestoEncoder()
    want = model.state_dict()
    missing = sorted(set(want) - set(enc))
    if missing:
        raise InputError(f"{path}: not Presto weights (missing key encoder.{missing[0]}"
                         f"{f' and {len(missing) - 1} more' if len(missing) > 1 else ''})")
    for k, v in want.items():
        if tuple(enc[k].shape) != tuple(v.shape):
            raise InputError(f"{path}: key encoder.{k} has shape {list(enc[k].shape)}, expected {list(v.shape)}")
    model.load_state_dict({k: enc[k].float() for k in want}, strict=True)
    return model.to(device).eval()
