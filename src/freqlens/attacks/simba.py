"""SimBA, the Simple Black-box Attack (Guo et al. 2019), pixel and DCT bases, batched over images."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from freqlens.attacks.base import Attack, check_count, check_number, rand
from freqlens.spectral import dct_bands, idct2

__all__ = ["BASES", "ORDERS", "SimBA"]

BASES = ("pixel", "dct")
ORDERS = ("random", "strided", "diagonal")


class SimBA(Attack):
    """Query-only attack: for basis vectors q taken in ``order``, try ``x − εq`` then ``x + εq`` and keep
    a step only if it lowers the true-class probability (targeted: raises the target probability).

    Pixels are clipped to [0, 1] after each step. All images step together; each stops when
    misclassified (targeted: classified as the target) or when its ``max_queries`` budget is spent.
    After a call: ``queries`` (``LongTensor[B]``, the initial query included) and ``history``
    (``[T + 1, B]``, the tracked probability after each iteration; non-increasing untargeted,
    non-decreasing targeted).

    Args:
        model: the classifier (``B×C×H×W`` images in [0, 1] → ``B×K`` logits).
        eps: the step ε > 0 along each basis vector, in pixel units.
        max_queries: model queries per image (≥ 1, the initial query included).
        basis: ``"pixel"``: q are one-hot pixels (per channel); ``"dct"``: q are the full-image
            orthonormal DCT basis vectors (``idct2`` of one-hot coefficients).
        order: ``"random"`` (a permutation per image), ``"diagonal"`` (by band ``i + j``, low first,
            random within a band), ``"strided"`` (SimBA-DCT's order: the ``initial_size``²
            low-frequency block first, then rings of width ``stride``, random within each).
        targeted: labels are target classes whose probability is raised.
        generator: seeds the random order (``None``: the global random stream).
        initial_size: side of the first block of the ``"strided"`` order (``None``: ``min(H, W) // 4``,
            at least 1).
        stride: ring width of the ``"strided"`` order (``None``: ``min(H, W) // 8``, at least 1).

    Raises:
        ValueError: ``eps <= 0``, a bad count, or an unknown ``basis`` / ``order``.
    """

    def __init__(
        self,
        model: nn.Module,
        eps: float = 0.2,
        max_queries: int = 1000,
        basis: str = "pixel",
        order: str = "random",
        targeted: bool = False,
        generator: torch.Generator | None = None,
        initial_size: int | None = None,
        stride: int | None = None,
    ) -> None:
        super().__init__(model, targeted)
        self.eps = check_number("eps", eps)
        self.max_queries = check_count("max_queries", max_queries)
        if basis not in BASES:
            raise ValueError(f"unknown SimBA basis {basis!r}; expected one of {', '.join(BASES)}")
        if order not in ORDERS:
            raise ValueError(f"unknown SimBA order {order!r}; expected one of {', '.join(ORDERS)}")
        self.basis, self.order = basis, order
        self.initial_size = None if initial_size is None else check_count("initial_size", initial_size)
        self.stride = None if stride is None else check_count("stride", stride)
        self.generator = generator
        self.queries: Tensor | None = None
        self.history: Tensor | None = None

    def _ordering(self, inputs: Tensor) -> Tensor:
        """``LongTensor[B, C·H·W]``: per image, the flat (c, i, j) indices in the order they are tried."""
        batch, channels, height, width = inputs.shape
        noise = rand((batch, channels * height * width), self.generator, inputs)
        if self.order == "random":
            return noise.argsort(dim=1)
        if self.order == "diagonal":
            key = dct_bands(height, width, device=inputs.device).to(inputs.dtype)
        else:
            initial = self.initial_size or max(1, min(height, width) // 4)
            stride = self.stride or max(1, min(height, width) // 8)
            radius = torch.maximum(torch.arange(height, device=inputs.device)[:, None],
                                   torch.arange(width, device=inputs.device)[None, :]) + 1
            key = ((radius - initial).clamp_min(0) + stride - 1).div(stride, rounding_mode="floor").to(inputs.dtype)
        key = key.expand(channels, height, width).reshape(1, -1)
        return (key + noise).argsort(dim=1)  # noise in [0, 1) breaks ties only

    def _direction(self, inputs: Tensor, index: Tensor) -> Tensor:
        """Basis vectors ``[b, C, H, W]`` for flat indices ``index`` ``[b]``."""
        flat = torch.zeros(index.shape[0], inputs[0].numel(), device=inputs.device, dtype=inputs.dtype)
        flat.scatter_(1, index[:, None], 1.0)
        direction = flat.view(index.shape[0], *inputs.shape[1:])
        return idct2(direction) if self.basis == "dct" else direction

    def _score(self, inputs: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """(probability of ``labels``, success) for ``inputs``: one query per image."""
        logits = self.model(inputs)
        probability = logits.softmax(dim=1).gather(1, labels[:, None]).squeeze(1)
        return probability, self._successful(logits, labels)

    def _better(self, new: Tensor, old: Tensor) -> Tensor:
        return new > old if self.targeted else new < old

    def _run(self, inputs: Tensor, labels: Tensor) -> Tensor:
        batch = inputs.shape[0]
        order = self._ordering(inputs)
        current = inputs.clone()
        probability, done = self._score(current, labels)
        queries = torch.ones(batch, dtype=torch.long, device=inputs.device)
        history = [probability.clone()]
        iterations = min(order.shape[1], self.max_queries)
        for iteration in range(iterations):
            active = (~done & (queries < self.max_queries)).nonzero().squeeze(1)
            if active.numel() == 0:
                break
            direction = self._direction(inputs, order[active, iteration]) * self.eps
            # x − εq
            trial = (current[active] - direction).clamp(0.0, 1.0)
            trial_probability, trial_success = self._score(trial, labels[active])
            queries[active] += 1
            accept = self._better(trial_probability, probability[active])
            self._accept(current, probability, done, active[accept], trial[accept],
                         trial_probability[accept], trial_success[accept])
            # x + εq where x − εq was rejected and budget remains
            retry = ~accept & (queries[active] < self.max_queries)
            if bool(retry.any()):
                again = active[retry]
                trial = (current[again] + direction[retry]).clamp(0.0, 1.0)
                trial_probability, trial_success = self._score(trial, labels[again])
                queries[again] += 1
                accept = self._better(trial_probability, probability[again])
                self._accept(current, probability, done, again[accept], trial[accept],
                             trial_probability[accept], trial_success[accept])
            history.append(probability.clone())
        self.queries = queries
        self.history = torch.stack(history)
        return current

    @staticmethod
    def _accept(current: Tensor, probability: Tensor, done: Tensor, where: Tensor, images: Tensor,
                new_probability: Tensor, success: Tensor) -> None:
        current[where] = images
        probability[where] = new_probability
        done[where] = success

    def _settings(self) -> dict:
        return {"eps": self.eps, "max_queries": self.max_queries, "basis": self.basis, "order": self.order,
                "targeted": self.targeted}

