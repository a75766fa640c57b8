"""Built-in workload ``charlm``: a small GPT-style byte-level language model on Python source.

The corpus is the source of a fixed list of modules of Python's own standard library, which
every CPython installation carries, so the workload needs no download. Files missing from an
installation are skipped; the loader fails with a clear message only if too little text is
left. The text (and so every figure below) differs a little between Python versions, but is
fixed on any one installation.

Data: the files are concatenated in sorted order and capped at 1.5 MB. The last 10 % of the
bytes is validation, contiguous, so no validation text is seen in training. Both parts are
cut into non-overlapping windows of 64 bytes; the targets are the inputs shifted by one.
Validation keeps 512 windows spread evenly over its part (32768 predicted bytes), which
evaluates in about 0.25 s on one CPU thread.

Model: token and learned position embeddings, two pre-LayerNorm transformer blocks (width 64,
4 heads, causal self-attention written out, 4x GELU MLP), a final LayerNorm and a linear head
over the 256 byte values; about 137k parameters.

Measured on Python 3.11 and a 2-core Xeon (AVX-512, AMX), one thread, batch 32, fp32, AdamW
lr 2e-3 (constant), over 8 seeds (``val_bpc``: bits per byte, lower is better):

* untrained: 8.0 bits (uniform over 256 bytes); for scale, the byte unigram entropy of the
  training text is 4.46 bits and its bigram conditional entropy 3.38 bits;
* 250 steps: 3.22-3.41 bits in about 6 s; 300 steps: 3.13-3.30; 400 steps: 2.97-3.13;
  800 steps (lr 3e-3): about 2.6.

So a trial of a few hundred steps already beats a bigram model, with plenty of room left for
the tuner. lr 3e-3 is already less stable (2.99-3.39 after 400 steps over 4 seeds).

Speed, one thread, batch 32, interleaved in one run: written-out attention takes 31 ms per
step in fp32 and 21 ms under bf16 autocast (1.5x faster). ``F.scaled_dot_product_attention``
takes 26 ms in fp32 but 59 ms in bf16: in torch 2.13 its CPU backward in bf16 is several times
slower than in fp32, which would hide bf16's gain on every CPU. Attention is written out so
precision is a real trade-off for the tuner to measure. ``torch.compile`` (inductor) fuses
it after 5-20 s of compilation.

The ``gpu`` size (``GPU_WORKLOAD``, ``size = "gpu"`` in a study) trains on the same text in
windows of 256 bytes (about 5.3k training windows, 512 kept for validation) an 8-block model of
width 512 (8 heads of 64, 4x MLP; about 25.6M parameters) whose attention is
``F.scaled_dot_product_attention(..., is_causal=True)``: on CUDA that dispatches to FlashAttention
or memory-efficient kernels, which never store the [T, T] scores (the CPU's slow bf16 backward,
above, is why the small size writes attention out). It runs on a CPU too (one forward and
backward of two windows takes about a second on one thread), but its figures are not measured
here. The corpus is still 1.35 MB of training text, so a long GPU budget passes over it many
times: read the validation curve for overfitting before trusting a long run's metric.

Example::

    from tuner.workload import load_workload

    workload = load_workload("charlm")
    data = workload.load_data()  # int64 windows of shape [N, 64]
"""

from __future__ import annotations

import dataclasses
import functools
import math
import sysconfig
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from tuner.workload import Data, Direction, Metric, Workload

#: Standard-library files that are plain modules (not packages) in every CPython from 3.11
#: on; keep them plain modules so the list resolves the same way across versions.
_CORPUS_FILES = (
    "argparse.py",
    "ast.py",
    "calendar.py",
    "configparser.py",
    "contextlib.py",
    "dataclasses.py",
    "difflib.py",
    "enum.py",
    "fractions.py",
    "functools.py",
    "inspect.py",
    "ipaddress.py",
    "locale.py",
    "optparse.py",
    "pickle.py",
    "pprint.py",
    "shutil.py",
    "statistics.py",
    "subprocess.py",
    "tarfile.py",
    "textwrap.py",
    "threading.py",
    "tokenize.py",
    "traceback.py",
    "typing.py",
)
#: Cap on the corpus: about 21k training windows, so a trial of a few hundred steps at batch
#: 32 sees each at most once, while loading stays under 0.1 s.
_MAX_BYTES = 1_500_000
#: Below this the validation part would be too short to rank trials reliably.
_MIN_BYTES = 256 * 1024
_VAL_FRACTION = 0.1
#: Context length in bytes: the length of every input and target window.
BLOCK_SIZE = 64
#: Context length of the ``gpu`` size.
GPU_BLOCK_SIZE = 256
#: Validation windows kept, so a full evaluation stays well under a second on one thread.
_VAL_WINDOWS = 512
_VOCAB_SIZE = 256


def _read_corpus(stdlib: Path) -> bytes:
    """Concatenate the corpus files found under `stdlib`, in sorted order, capped.

    Raises:
        FileNotFoundError: fewer than `_MIN_BYTES` bytes of the listed files exist there
            (a stripped Python installation that ships only bytecode, for example).
    """
    parts: list[bytes] = []
    size = 0
    for name in sorted(_CORPUS_FILES):
        if size >= _MAX_BYTES:
            break
        path = stdlib / name
        if path.is_file():
            parts.append(path.read_bytes())
            size += len(parts[-1])
    if size < _MIN_BYTES:
        raise FileNotFoundError(
            f"charlm: found {size} bytes of Python standard-library source under {stdlib}, "
            f"need at least {_MIN_BYTES}; this Python installation seems to lack its .py "
            f"sources (looked for {', '.join(sorted(_CORPUS_FILES))})"
        )
    return b"".join(parts)[:_MAX_BYTES]


def _windows(
    tokens: torch.Tensor, block_size: int = BLOCK_SIZE
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut a 1-d byte sequence into non-overlapping [N, block_size] inputs and next-byte targets."""
    n = (len(tokens) - 1) // block_size
    inputs = tokens[: n * block_size].view(n, block_size)
    targets = tokens[1 : n * block_size + 1].view(n, block_size)
    return inputs, targets


def _load(block_size: int) -> Data:
    """The corpus split into training and (an evenly spread subset of) validation windows."""
    corpus = _read_corpus(Path(sysconfig.get_paths()["stdlib"]))
    tokens = torch.frombuffer(bytearray(corpus), dtype=torch.uint8).long()
    n_val = int(len(tokens) * _VAL_FRACTION)
    train_inputs, train_targets = _windows(tokens[:-n_val], block_size)
    val_inputs, val_targets = _windows(tokens[-n_val:], block_size)
    keep = torch.linspace(0, len(val_inputs) - 1, min(_VAL_WINDOWS, len(val_inputs))).long()
    return Data(train_inputs, train_targets, val_inputs[keep], val_targets[keep])


@functools.lru_cache(maxsize=1)
def load_data() -> Data:
    """Byte windows of the standard-library corpus: int64 inputs and targets of [N, 64].

    Cached: every trial in one process shares the same tensors (the harness never mutates
    them). Validation keeps a fixed, evenly spread subset of its windows, so evaluation
    stays cheap while still covering every file in the validation part.
    """
    return _load(BLOCK_SIZE)


@functools.lru_cache(maxsize=1)
def load_gpu_data() -> Data:
    """As `load_data`, in windows of `GPU_BLOCK_SIZE` bytes for the ``gpu`` size's context."""
    return _load(GPU_BLOCK_SIZE)


class _Block(nn.Module):
    """Pre-LayerNorm transformer block: causal self-attention, then a 4x MLP, each residual."""

    def __init__(self, width: int, heads: int, block_size: int) -> None:
        super().__init__()
        self.heads = heads
        self.scale = 1.0 / math.sqrt(width // heads)
        self.causal: torch.Tensor  # [block_size, block_size] lower triangle, a buffer
        causal = torch.ones(block_size, block_size, dtype=torch.bool).tril()
        self.register_buffer("causal", causal, persistent=False)
        self.attn_norm = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.mlp_norm = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, time, width = x.shape
        q, k, v = self.qkv(self.attn_norm(x)).split(width, dim=-1)
        q, k, v = (t.view(batch, time, self.heads, -1).transpose(1, 2) for t in (q, k, v))
        attended = self._attend(q, k, v)
        x = x + self.proj(attended.transpose(1, 2).reshape(batch, time, width))
        return x + self.mlp(self.mlp_norm(x))

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Causal attention of [B, heads, T, head width] queries, keys and values."""
        time = q.shape[-2]
        # Attention written out rather than F.scaled_dot_product_attention: in torch 2.13 the
        # CPU backward of bf16 SDPA is ~7x slower than fp32, which would make bf16 autocast
        # lose on any CPU; written out, bf16 is a real speed/precision trade (module docstring).
        scores = (q @ k.transpose(-2, -1)) * self.scale
        scores = scores.masked_fill(~self.causal[:time, :time], float("-inf"))
        return scores.softmax(dim=-1) @ v


class _FusedBlock(_Block):
    """The same block with fused attention, for GPUs: ``F.scaled_dot_product_attention``
    dispatches to FlashAttention or memory-efficient kernels on CUDA, which never store the
    [T, T] score matrix (the written-out form stores it for backward at every layer).

    It computes the same function as `_Block` (same scale, same causal mask); the causal
    buffer it inherits goes unused.
    """

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)


class CharTransformer(nn.Module):
    """A GPT-style decoder over bytes: [B, T] int64 in, [B, T, 256] logits out.

    ``fused_attention`` selects ``F.scaled_dot_product_attention`` over the written-out form
    (`_FusedBlock`); the function is the same, the kernels and the memory differ.

    Weights start at N(0, 0.02) as in GPT-2, so an untrained model predicts almost uniformly
    (8.0 bits per byte, against 8.3 with PyTorch's default N(0, 1) embeddings) and every
    trial's learning curve starts from the same, known place.
    """

    def __init__(
        self,
        width: int = 64,
        layers: int = 2,
        heads: int = 4,
        block_size: int = BLOCK_SIZE,
        fused_attention: bool = False,
    ) -> None:
        super().__init__()
        self.token_embedding = nn.Embedding(_VOCAB_SIZE, width)
        self.position_embedding = nn.Embedding(block_size, width)
        block = _FusedBlock if fused_attention else _Block
        self.blocks = nn.ModuleList(block(width, heads, block_size) for _ in range(layers))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, _VOCAB_SIZE)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.token_embedding(tokens) + self.position_embedding(positions)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


def build_gpu_model() -> CharTransformer:
    """The ``gpu`` size: 8 blocks of width 512 (8 heads of 64), context 256, fused attention;
    about 25M parameters."""
    return CharTransformer(
        width=512, layers=8, heads=8, block_size=GPU_BLOCK_SIZE, fused_attention=True
    )


def transformer_blocks(model: nn.Module) -> list[nn.Module]:
    """The transformer blocks of a `CharTransformer`: what activation checkpointing recomputes."""
    return list(model.get_submodule("blocks").children())


def cross_entropy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-byte cross entropy (nats) over every position of every sequence."""
    return F.cross_entropy(outputs.flatten(0, 1), targets.flatten())


def bits_per_byte(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-token cross entropy in bits; their mean over the validation set is ``val_bpc``.

    Computed in fp32 whatever the logits' dtype, so a bf16 forward does not blur the metric.
    """
    nats = F.cross_entropy(outputs.flatten(0, 1).float(), targets.flatten(), reduction="none")
    return nats / math.log(2)


WORKLOAD = Workload(
    name="charlm",
    # Measured seed-to-seed spread of one config: about 0.035 bits per character.
    metric=Metric("val_bpc", Direction.MINIMIZE, noise=0.035, chance=8.0),  # 8 bits: a byte
    build_model=CharTransformer,
    load_data=load_data,
    loss=cross_entropy,
    score=bits_per_byte,
    description="2-layer byte-level transformer LM on Python standard-library source",
    eval_batch_size=512,
    checkpoint_blocks=transformer_blocks,
)

# The seed spread is the small size's: not measured for this size (no GPU where it was written).
GPU_WORKLOAD = dataclasses.replace(
    WORKLOAD,
    name="charlm-gpu",
    build_model=build_gpu_model,
    load_data=load_gpu_data,
    description="8-layer, 512-wide byte-level transformer LM, context 256 (GPU size)",
    eval_batch_size=128,
)
