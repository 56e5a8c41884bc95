"""The toy two-feature data of spec §4: an easy and a hard feature that both predict y, plus noise.

x = (x_easy, x_hard, x_noise). With label sign s = ±1:
x_easy = s·μ_e·a_i + σ_e·ξ, x_hard = s·μ_h + σ_h·ζ, x_noise ~ N(0, σ_n² I_{d_n}).
a_i is the example's easy-feature strength: 0 for a fraction ``q`` of examples (they can be fitted
only through the hard feature) and uniform on [1 − spread, 1 + spread] otherwise.
``independent=True`` draws the easy feature from its own label, independent of y (probe data:
there each feature can be decoded only from itself).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from samlens.errors import ConfigError
from samlens.validate import check_fraction, check_int, check_real

EASY, HARD = 0, 1


@dataclass(frozen=True)
class ToyData:
    """Parameters of the toy distribution (see the module docstring)."""

    mu_easy: float = 1.0
    sigma_easy: float = 0.1
    mu_hard: float = 0.3
    sigma_hard: float = 0.3
    noise_dims: int = 10
    sigma_noise: float = 0.3
    q: float = 0.0
    easy_spread: float = 0.0

    def __post_init__(self) -> None:
        for name in ("mu_easy", "mu_hard"):
            check_real(name, getattr(self, name))
        for name in ("sigma_easy", "sigma_hard", "sigma_noise"):
            check_real(name, getattr(self, name), low=0.0)
        check_int("noise_dims", self.noise_dims, low=0)
        check_fraction("q", self.q)
        check_fraction("easy_spread", self.easy_spread)

    @property
    def dim(self) -> int:
        return 2 + self.noise_dims

    def sample(self, n: int, seed: int, independent: bool = False) -> dict[str, Tensor]:
        """n examples: ``x`` [n, dim] float32, ``y`` (label, 0/1), ``y_easy``, ``y_hard``, ``strength``."""
        if n < 1:
            raise ConfigError(f"n must be >= 1, got {n}")
        g = torch.Generator().manual_seed(int(seed))
        y = torch.randint(0, 2, (n,), generator=g)
        y_easy = torch.randint(0, 2, (n,), generator=g) if independent else y
        s_hard, s_easy = 2.0 * y - 1, 2.0 * y_easy - 1
        strength = 1 + self.easy_spread * (2 * torch.rand(n, generator=g) - 1)
        strength = torch.where(torch.rand(n, generator=g) < self.q, torch.zeros(n), strength)
        x = torch.empty(n, self.dim)
        x[:, EASY] = s_easy * self.mu_easy * strength + self.sigma_easy * torch.randn(n, generator=g)
        x[:, HARD] = s_hard * self.mu_hard + self.sigma_hard * torch.randn(n, generator=g)
        x[:, 2:] = self.sigma_noise * torch.randn(n, self.noise_dims, generator=g)
        return {"x": x, "y": y, "y_easy": y_easy, "y_hard": y, "strength": strength}
