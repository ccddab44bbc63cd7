import gymnasium as gym
import numpy as np
import pytest

from ivi_rl.envs import (
    DeepSeaEnv,
    deep_sea_score,
    optimal_return,
    solve_episode,
    solve_rule,
)


def _run(env, policy):
    obs, _ = env.reset()
    total, steps = 0.0, 0
    while True:
        row, col = np.argwhere(obs == 1)[0]
        obs, reward, terminated, truncated, info = env.step(policy(row, col))
        total, steps = total + reward, steps + 1
        if terminated or truncated:
            return total, steps, info, obs


@pytest.mark.parametrize("size", [5, 10, 20])
def test_following_the_mapping_returns_0_99_in_n_steps(size):
    env = DeepSeaEnv(size)
    total, steps, info, last = _run(env, lambda r, c: env.mapping[r, c])
    assert (
        steps == size
        and total == pytest.approx(0.99)
        and total == pytest.approx(optimal_return(size))
    )
    assert info["bad_episode"] is False and not last.any()


def test_mapping_for_seed_42_is_bsuites():
    env = DeepSeaEnv(4, mapping_seed=42)
    np.testing.assert_array_equal(env.mapping, np.random.RandomState(42).binomial(1, 0.5, (4, 4)))
    np.testing.assert_array_equal(
        env.mapping, [[0, 1, 1, 1], [0, 0, 0, 1], [1, 1, 0, 1], [1, 0, 0, 0]]
    )
    assert (DeepSeaEnv(4, randomize_actions=False).mapping == 1).all()


def test_registered_ids_use_bsuites_mapping_seed_per_experiment():
    """bsuite's deep_sea sweep sets mapping seed 42; deep_sea_stochastic's sets none, so its
    loader's default 0 holds."""
    for env_id, seed, deterministic in (
        ("ivi_rl/DeepSea-v0", 42, True),
        ("ivi_rl/DeepSeaStochastic-v0", 0, False),
    ):
        base = gym.make(env_id, size=12).unwrapped
        assert (base.mapping_seed, base.deterministic) == (seed, deterministic)
        expected = np.random.RandomState(seed).binomial(1, 0.5, (12, 12))
        np.testing.assert_array_equal(base.mapping, expected)
    assert DeepSeaEnv(4, randomize_actions=False).mapping_seed is None


def test_uniform_random_policy_rarely_succeeds():
    """Success needs N 'right' choices in a row: probability 2^-N. N = 6, 20,000 episodes:
    expected 312.5 successes, s.d. 17.5; allow 4 s.d."""
    env = DeepSeaEnv(6)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    successes = sum(_run(env, lambda r, c: int(rng.integers(2)))[0] > 0.5 for _ in range(20_000))
    assert abs(successes - 20_000 / 64) < 4 * 17.5
    assert env.total_bad_episodes == 20_000 - successes  # the only good episodes are optimal ones


def test_bad_episode_flag():
    env = DeepSeaEnv(5)
    left = lambda r, c: 1 - env.mapping[r, c]  # noqa: E731
    assert _run(env, left)[2]["bad_episode"] is True
    # right once, then left on the diagonal at (1, 1): bad
    assert _run(env, lambda r, c: env.mapping[r, c] if r == 0 else 1 - env.mapping[r, c])[2][
        "bad_episode"
    ]
    # leaving the diagonal only after the last row is never reached: right all the way is good
    assert env.total_bad_episodes == 2


def test_stochastic_right_succeeds_with_probability_one_minus_one_over_n():
    """Always 'right' on a 5 x 5 grid: each move succeeds w.p. 0.8. The column seen at the last
    row has made 4 moves: Binomial(4, 0.8), mean 3.2. 4,000 episodes: s.e. 0.0126; allow 4."""
    env = DeepSeaEnv(5, deterministic=False)
    env.reset(seed=0)
    finals = []
    for _ in range(4000):
        obs, _ = env.reset()
        col = 0
        for row in range(5):
            obs, *_ = env.step(env.mapping[row, col])
            if row < 4:
                col = int(np.argwhere(obs == 1)[0][1])
        finals.append(col)
    assert abs(np.mean(finals) - 3.2) < 4 * 0.0126


def test_solve_episode_and_score():
    assert solve_episode([True] * 9 + [False]) is None  # 9/10 = 0.9 is not < 0.9
    assert solve_episode([True] * 9 + [False, False]) == 11
    assert solve_episode([True] * 20) is None
    assert solve_episode([False] * 5) == 1
    assert solve_episode([False] * 200, threshold=0.8, min_episode=100) == 100
    assert deep_sea_score({10: 500, 12: None, 14: 20_000}) == pytest.approx(1 / 3)
    assert deep_sea_score({10: 1123}) == 1.0 and deep_sea_score({10: 1124}) == 0.0
    with pytest.raises(ValueError, match=r"at least one size"):
        deep_sea_score({})


def test_solve_rule_is_bsuites_per_variant():
    quarter_good = [True, True, True, False] * 50  # bad fraction 0.75 from episode 4 on
    assert solve_episode(quarter_good, **solve_rule(True)) == 4
    assert solve_episode(quarter_good, **solve_rule(False)) == 100
    sixth_good = [True] * 5 + [False]  # 5/6 = 0.83: below 0.9, not below 0.8
    assert solve_episode(sixth_good * 40, **solve_rule(True)) == 6
    assert solve_episode(sixth_good * 40, **solve_rule(False)) is None


def test_deep_sea_errors():
    with pytest.raises(ValueError, match=r"size=1 must be an int >= 2"):
        DeepSeaEnv(1)
    env = DeepSeaEnv(3)
    with pytest.raises(RuntimeError, match=r"before reset"):
        env.step(0)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action=2 is out of range; accepted: 0 or 1"):
        env.step(2)
    with pytest.raises(TypeError, match=r"action=0.5 must be an int"):
        env.step(0.5)


class _Draws:
    """Stands in for the env's generator: hands out pre-drawn normals and uniforms in order,
    so the env and the reimplementation below see the same random numbers."""

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.normals, self.uniforms = list(rng.normal(size=5000)), list(rng.uniform(size=5000))
        self.used_normals = self.used_uniforms = 0

    def normal(self):
        self.used_normals += 1
        return self.normals[self.used_normals - 1]

    def uniform(self):
        self.used_uniforms += 1
        return self.uniforms[self.used_uniforms - 1]


class _BsuiteDeepSea:
    """bsuite.environments.deep_sea.DeepSea._step's rules (bsuite 0.3.6), written from its
    source: the reward noise is drawn before the move, the move cost is charged whenever the
    action is 'right', 'right' fails with probability 1/N, a bad episode is 'left' on the
    diagonal."""

    def __init__(self, size: int, mapping: np.ndarray, draws: _Draws) -> None:
        self.size, self.mapping, self.draws = size, mapping, draws
        self.row = self.column = 0
        self.bad = False
        self.total_bad = 0
        self.denoised = 0.0

    def reset(self) -> None:
        self.row = self.column = 0
        self.bad = False

    def step(self, action: int) -> tuple[float, bool]:
        reward = 0.0
        right = action == self.mapping[self.row, self.column]
        if self.column == self.size - 1 and right:
            reward += 1.0
            self.denoised += 1.0
        if self.row == self.size - 1 and self.column in [0, self.size - 1]:
            reward += self.draws.normal()
        if right:
            if self.draws.uniform() > 1 / self.size:
                self.column = int(np.clip(self.column + 1, 0, self.size - 1))
            reward -= 0.01 / self.size
        else:
            if self.row == self.column:
                self.bad = True
            self.column = int(np.clip(self.column - 1, 0, self.size - 1))
        self.row += 1
        done = self.row == self.size
        if done and self.bad:
            self.total_bad += 1
        return reward, done


@pytest.mark.parametrize("size", [3, 6])
def test_the_stochastic_variant_follows_bsuites_rules_step_for_step(size):
    """300 episodes of random actions, mostly 'right' so the chain's end is reached: with the
    same random numbers, every reward, position, bad episode and bsuite counter agrees."""
    env = DeepSeaEnv(size, deterministic=False)
    env.reset(seed=0)
    env.np_random = draws = _Draws(1)  # the env draws from here from now on
    reference = _BsuiteDeepSea(size, env.mapping, _Draws(1))
    actions = np.random.default_rng(2)
    for _ in range(300):
        obs, _ = env.reset()
        reference.reset()
        done = False
        while not done:
            row, col = np.argwhere(obs == 1)[0]
            action = int(env.mapping[row, col]) if actions.uniform() < 0.8 else actions.integers(2)
            obs, reward, done, _, info = env.step(action)
            expected, expected_done = reference.step(action)
            assert reward == pytest.approx(expected, abs=1e-12) and done == expected_done
            if not done:
                assert (row + 1, reference.column) == tuple(np.argwhere(obs == 1)[0])
        assert info["total_bad_episodes"] == reference.total_bad
        assert info["denoised_return"] == reference.denoised
    assert draws.used_normals == reference.draws.used_normals > 0
    assert draws.used_uniforms == reference.draws.used_uniforms > 0
