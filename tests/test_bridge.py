"""Brownian bridge: schedule, marginals, L1 objective, few-step sampler, input checks."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest
import torch

from live_restore.models.bridge import BrownianBridge
from live_restore.models.timesteps import sampling_timesteps, timestep_embedding


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _pair(shape=(3, 1, 8, 8), dtype=torch.float64, seed=0) -> tuple[torch.Tensor, torch.Tensor]:
    g = _gen(seed)
    return torch.rand(shape, generator=g, dtype=dtype), torch.rand(shape, generator=g, dtype=dtype)


class Oracle:
    """Perfect denoiser for a known ``x0``: returns the true ``x_t − x_0``; records calls."""

    def __init__(self, x0: torch.Tensor, error_std: float = 0.0, seed: int = 0):
        self.x0 = x0
        self.error_std = error_std
        self.generator = _gen(seed)
        self.calls: list[list[int]] = []

    def __call__(self, x_t: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.calls.append(t.tolist())
        out = x_t - self.x0
        if self.error_std:
            noise = torch.randn(x_t.shape, generator=self.generator, dtype=x_t.dtype)
            out = out + self.error_std * noise
        return out


def _toy_model(x_t: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A fixed non-oracle denoiser whose output depends on the sampling noise."""
    return 0.5 * (x_t - y) + 0.1 * x_t * (t[:, None, None, None] / 1000.0)


# ----------------------------------------------------------------------------- schedule


def test_schedule_buffers():
    bridge = BrownianBridge(num_timesteps=1000, s=0.4)
    assert bridge.m_t.dtype == torch.float32
    assert bridge.variance_t.shape == (1001,)
    assert bridge.m_t[0] == 0 and bridge.m_t[-1] == 1
    torch.testing.assert_close(bridge.m_t[250], torch.tensor(0.25))
    assert bridge.variance_t[0] == 0 and bridge.variance_t[-1] == 0
    assert int(bridge.variance_t.argmax()) == 500
    torch.testing.assert_close(bridge.variance_t.max(), torch.tensor(0.2))  # s / 2
    m = bridge.m_t.double()
    torch.testing.assert_close(bridge.variance_t.double(), 0.8 * (m - m * m), atol=1e-7, rtol=0)
    assert set(bridge.state_dict()) == {"m_t", "variance_t"}


# ----------------------------------------------------------------------------- marginal


def test_marginal_endpoints_are_exact():
    bridge = BrownianBridge(num_timesteps=100)
    x0, y = _pair()
    noise = torch.randn(x0.shape, generator=_gen(1), dtype=x0.dtype)
    t = torch.tensor([0, 100, 0])
    x_t = bridge.q_sample(x0, y, t, noise)
    torch.testing.assert_close(x_t[0], x0[0], rtol=0, atol=0)
    torch.testing.assert_close(x_t[1], y[1], rtol=0, atol=0)
    torch.testing.assert_close(x_t[2], x0[2], rtol=0, atol=0)


def test_marginal_moments_in_the_middle():
    bridge = BrownianBridge(num_timesteps=1000, s=0.5)
    shape = (2, 1, 200, 200)
    x0, y = torch.full(shape, 0.2, dtype=torch.float64), torch.full(shape, 0.9, dtype=torch.float64)
    t = torch.tensor([300, 700])
    x_t = bridge.q_sample(x0, y, t, torch.randn(shape, generator=_gen(2), dtype=torch.float64))
    for i, step in enumerate((300, 700)):
        m = step / 1000
        assert x_t[i].mean().item() == pytest.approx((1 - m) * 0.2 + m * 0.9, abs=0.01)
        assert x_t[i].var().item() == pytest.approx(2 * 0.5 * (m - m * m), rel=0.03)


# ----------------------------------------------------------------------------- training loss


def test_p_losses_is_l1_of_xt_minus_x0():
    bridge = BrownianBridge(num_timesteps=1000)
    x0, y = _pair()
    t = torch.tensor([1, 500, 1000])
    seen = {}

    def offset_model(x_t, y_, t_):
        seen["x_t"], seen["t"] = x_t, t_
        return x_t - x0 + 0.3  # the true target plus a constant

    loss = bridge.p_losses(offset_model, x0, y, t=t, generator=_gen(3))
    assert loss.ndim == 0
    assert loss.item() == pytest.approx(0.3, abs=1e-12)  # L1: |0.3|, not 0.3² = 0.09
    assert torch.equal(seen["t"], t)
    # x_t was drawn from q(x_t | x0, y): at t = T it is exactly y.
    torch.testing.assert_close(seen["x_t"][2], y[2], rtol=0, atol=0)

    perfect = bridge.p_losses(lambda x_t, y_, t_: x_t - x0, x0, y, t=t, generator=_gen(3))
    assert perfect.item() == 0.0
    zero = bridge.p_losses(lambda x_t, y_, t_: torch.zeros_like(x_t), x0, y, t=t, generator=_gen(3))
    expected = (seen["x_t"] - x0).abs().mean()  # same generator → same x_t
    torch.testing.assert_close(zero, expected)


def test_p_losses_gradient_flows_to_the_model():
    bridge = BrownianBridge(num_timesteps=50)
    x0, y = _pair(dtype=torch.float32)
    model = torch.nn.Conv2d(2, 1, 3, padding=1)
    loss = bridge.p_losses(
        lambda x_t, y_, t_: model(torch.cat((x_t, y_), dim=1)), x0, y, generator=_gen(4)
    )
    loss.backward()
    assert model.weight.grad is not None and model.weight.grad.abs().sum() > 0


def test_p_losses_draws_t_uniformly_from_1_to_T():
    bridge = BrownianBridge(num_timesteps=5)
    x0, y = _pair(shape=(4000, 1, 2, 2))
    seen = []

    def recorder(x_t, y_, t_):
        seen.append(t_)
        return torch.zeros_like(x_t)

    bridge.p_losses(recorder, x0, y, generator=_gen(5))
    bridge.p_losses(recorder, x0, y, generator=_gen(5))
    assert torch.equal(seen[0], seen[1])  # same generator → same draws
    counts = torch.bincount(seen[0], minlength=6)
    assert counts[0] == 0
    assert all(abs(c - 800) < 120 for c in counts[1:].tolist())


def test_first_hop_fraction_puts_that_share_of_draws_at_T():
    bridge = BrownianBridge(num_timesteps=5)
    x0, y = _pair(shape=(4000, 1, 2, 2))
    seen = []

    def recorder(x_t, y_, t_):
        seen.append((x_t, t_))
        return torch.zeros_like(x_t)

    bridge.p_losses(recorder, x0, y, generator=_gen(6), first_hop_fraction=0.5)
    x_t, t = seen[0]
    counts = torch.bincount(t, minlength=6)
    assert counts[0] == 0
    # half the batch at T, the other half uniform over 1..T: T gets 0.5 + 0.5 / 5 = 60 %.
    assert abs(counts[5].item() - 2400) < 150
    assert all(abs(c - 400) < 100 for c in counts[1:5].tolist())
    torch.testing.assert_close(x_t[t == 5], y[t == 5], rtol=0, atol=0)  # x_T is exactly y
    bridge.p_losses(recorder, x0, y, generator=_gen(6), first_hop_fraction=1.0)
    assert bool((seen[1][1] == 5).all())
    with pytest.raises(ValueError, match="first_hop_fraction"):
        bridge.p_losses(recorder, x0, y, first_hop_fraction=1.5)


# ----------------------------------------------------------------------------- step grid


@pytest.mark.parametrize(("steps", "grid"), [(1, [1000, 0]), (4, [1000, 750, 500, 250, 0])])
def test_timesteps_known_grids(steps, grid):
    assert BrownianBridge(1000).timesteps(steps) == grid


@pytest.mark.parametrize(("num_timesteps", "steps"), [(1000, 8), (1000, 3), (1000, 7), (10, 10)])
def test_timesteps_even_and_end_at_zero(num_timesteps, steps):
    grid = BrownianBridge(num_timesteps).timesteps(steps)
    assert len(grid) == steps + 1
    assert grid[0] == num_timesteps and grid[-1] == 0
    gaps = [a - b for a, b in pairwise(grid)]
    assert min(gaps) >= 1
    assert max(gaps) - min(gaps) <= 1
    if num_timesteps % steps == 0:
        assert set(gaps) == {num_timesteps // steps}


# ----------------------------------------------------------------------------- sampler


@pytest.mark.parametrize("steps", [1, 2, 8])
@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_oracle_recovers_x0_in_s_steps(steps, eta):
    bridge = BrownianBridge(num_timesteps=1000, s=0.5)
    x0, y = _pair()
    oracle = Oracle(x0)
    out = bridge.sample(oracle, y, steps=steps, eta=eta, generator=_gen(6))
    torch.testing.assert_close(out, x0, rtol=0, atol=1e-12)
    grid = bridge.timesteps(steps)
    assert oracle.calls == [[t] * 3 for t in grid[:-1]]  # S calls, t from T down, never 0


def test_unbiased_noisy_oracle_recovers_x0_in_expectation():
    bridge = BrownianBridge(num_timesteps=1000, s=0.5)
    x0, y = _pair(shape=(64, 1, 16, 16), seed=7)
    out = bridge.sample(Oracle(x0, error_std=0.2, seed=8), y, steps=4, eta=1.0, generator=_gen(9))
    error = out - x0
    assert abs(error.mean().item()) < 0.005
    assert error.std().item() == pytest.approx(0.2, rel=0.05)


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_p_sample_keeps_the_bridge_marginal(eta):
    """DDIM property: given the true x0, x_t ~ q(x_t|x0, y) hops to x_s ~ q(x_s|x0, y)."""
    bridge = BrownianBridge(num_timesteps=1000, s=0.5)
    shape = (1, 1, 250, 250)
    x0, y = torch.full(shape, 0.2, dtype=torch.float64), torch.full(shape, 0.9, dtype=torch.float64)
    t, s = 600, 250
    noise = torch.randn(shape, generator=_gen(10), dtype=torch.float64)
    x_t = bridge.q_sample(x0, y, torch.tensor([t]), noise)
    x_s = bridge.p_sample(Oracle(x0), x_t, y, t, s, eta=eta, generator=_gen(11))
    m_s = s / 1000
    assert x_s.mean().item() == pytest.approx((1 - m_s) * 0.2 + m_s * 0.9, abs=0.005)
    assert x_s.var().item() == pytest.approx(2 * 0.5 * (m_s - m_s**2), rel=0.03)
    if eta == 0:  # deterministic DDIM: x_s is the same noise, rescaled
        eps_s = (x_s - (1 - m_s) * x0 - m_s * y) / math.sqrt(2 * 0.5 * (m_s - m_s**2))
        torch.testing.assert_close(eps_s, noise)


@pytest.mark.parametrize(("eta", "var_factor"), [(0.0, 0.0), (0.5, 0.25), (1.0, 1.0)])
def test_first_hop_from_y_has_eta_squared_spread(eta, var_factor):
    """x_T = y carries no noise, so the first hop's spread is η² δ_s (the full δ_s at η = 1)."""
    bridge = BrownianBridge(num_timesteps=1000, s=0.5)
    shape = (1, 1, 250, 250)
    x0, y = torch.zeros(shape, dtype=torch.float64), torch.ones(shape, dtype=torch.float64)
    x_s = bridge.p_sample(Oracle(x0), y, y, 1000, 500, eta=eta, generator=_gen(12))
    assert x_s.mean().item() == pytest.approx(0.5, abs=0.005)
    assert x_s.var().item() == pytest.approx(var_factor * 0.25, rel=0.03, abs=1e-12)


def test_same_generator_same_samples():
    bridge = BrownianBridge(num_timesteps=1000)
    _, y = _pair()
    a = bridge.sample(_toy_model, y, steps=4, eta=0.7, generator=_gen(13))
    b = bridge.sample(_toy_model, y, steps=4, eta=0.7, generator=_gen(13))
    c = bridge.sample(_toy_model, y, steps=4, eta=0.7, generator=_gen(14))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_eta_zero_is_deterministic_and_draws_no_noise():
    bridge = BrownianBridge(num_timesteps=1000)
    _, y = _pair()
    torch.manual_seed(0)
    state = torch.get_rng_state()
    a = bridge.sample(_toy_model, y, steps=8, eta=0.0)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(1)
    b = bridge.sample(_toy_model, y, steps=8, eta=0.0)
    assert torch.equal(a, b)


def test_sample_runs_in_inference_mode_and_keeps_dtype():
    bridge = BrownianBridge(num_timesteps=100)
    y = torch.rand(2, 1, 4, 4)
    out = bridge.sample(_toy_model, y, steps=2, eta=1.0, generator=_gen(15))
    assert out.dtype == torch.float32 and out.shape == y.shape
    assert out.is_inference()


# ----------------------------------------------------------------------------- embedding


def test_timestep_embedding():
    t = torch.tensor([0, 1, 500, 1000])
    emb = timestep_embedding(t, 32)
    assert emb.shape == (4, 32) and emb.dtype == torch.float32
    torch.testing.assert_close(emb[0], torch.cat((torch.ones(16), torch.zeros(16))))
    assert emb.abs().max() <= 1
    assert torch.cdist(emb, emb).fill_diagonal_(1).min() > 0.1  # distinct timesteps differ
    odd = timestep_embedding(t, 7)
    assert odd.shape == (4, 7) and torch.equal(odd[:, -1], torch.zeros(4))


# ----------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    ("steps", "match"),
    [(0, "got 0"), (-3, "got -3"), (1001, "got 1001"), (2.5, "got 2.5")],
)
def test_bad_steps_raise(steps, match):
    bridge = BrownianBridge(num_timesteps=1000)
    with pytest.raises(ValueError, match=rf"steps must be an integer in \[1, 1000\], {match}"):
        bridge.sample(_toy_model, torch.zeros(1, 1, 2, 2), steps=steps)
    with pytest.raises(ValueError, match=match):
        bridge.timesteps(steps)


@pytest.mark.parametrize("eta", [-0.1, 1.5, float("nan")])
def test_bad_eta_raises(eta):
    bridge = BrownianBridge(num_timesteps=10)
    with pytest.raises(ValueError, match=rf"eta must lie in \[0, 1\], got {eta!r}"):
        bridge.sample(_toy_model, torch.zeros(1, 1, 2, 2), steps=2, eta=eta)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_timesteps": 0}, "num_timesteps must be an integer >= 1, got 0"),
        ({"s": 0.0}, "s must be a positive finite number, got 0.0"),
        ({"s": float("inf")}, "got inf"),
        ({"schedule": "cosine"}, "got 'cosine'"),
    ],
)
def test_bad_constructor_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BrownianBridge(**kwargs)


def test_bad_tensors_raise():
    bridge = BrownianBridge(num_timesteps=10)
    x0, y = _pair()
    noise = torch.zeros_like(x0)
    with pytest.raises(ValueError, match=r"t must lie in \[0, 10\], got \[0, 11, 3\]"):
        bridge.q_sample(x0, y, torch.tensor([0, 11, 3]), noise)
    with pytest.raises(ValueError, match=r"shape \(3,\), got torch.int64 of shape \(2,\)"):
        bridge.q_sample(x0, y, torch.tensor([1, 2]), noise)
    with pytest.raises(ValueError, match=r"got \(3, 1, 8, 8\) and \(3, 1, 4, 4\)"):
        bridge.p_losses(_toy_model, x0, y[..., :4, :4])
    with pytest.raises(ValueError, match="got t=3, s=3"):
        bridge.p_sample(_toy_model, x0, y, 3, 3)
    with pytest.raises(ValueError, match="dim must be an integer >= 1, got 0"):
        timestep_embedding(torch.arange(3), 0)


def test_one_sampling_grid_helper_for_the_bridge_and_the_ddpm():
    # the bridge floors, the DDPM rounds to the nearest: they agree when S divides T ...
    assert sampling_timesteps(200, 4) == sampling_timesteps(200, 4, "nearest") == [
        200, 150, 100, 50, 0
    ]
    # ... and each keeps its own rounding otherwise, so trained models sample as evaluated
    assert sampling_timesteps(1000, 3) == [1000, 666, 333, 0]
    assert sampling_timesteps(1000, 3, "nearest") == [1000, 667, 333, 0]
    assert BrownianBridge(1000).timesteps(3) == sampling_timesteps(1000, 3)
    with pytest.raises(ValueError, match=r"steps must be an integer in \[1, 200\], got 201"):
        sampling_timesteps(200, 201, "nearest")
