"""Reward construction of every dataset, checked against hand-built rows."""

from __future__ import annotations

import numpy as np
import pytest

from ivi_rl.envs import ClassificationProblem, MushroomProblem, make_problem
from ivi_rl.envs.loaders import read_adult, read_census, read_covertype, read_mushroom

MUSHROOM_ROWS = [
    "e,x,s,y,t,a,f,c,b,k,e,c,s,s,w,w,p,w,o,p,n,n,g",
    "p,x,y,w,t,p,f,c,n,n,e,e,s,s,w,w,p,w,o,p,k,s,u",
]


def _row_index(contexts: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """For each trial context, the index of the equal reference row."""
    dist = np.abs(contexts[:, None, :] - reference[None, :, :]).max(-1)
    assert (dist.min(1) < 1e-5).all(), "a trial context matches no reference row"
    return dist.argmin(1)


def _zscore(x):
    std = x.std(0)
    return (x - x.mean(0)) / np.where(std == 0, 1, std)


def test_mushroom_rewards_and_one_hot(tmp_path):
    (tmp_path / "mushroom").mkdir()
    (tmp_path / "mushroom" / "agaricus-lepiota.data").write_text("\n".join(MUSHROOM_ROWS) + "\n")
    # hand-built rows fail the canonical checksum, so build from the reader directly
    codes, edible_rows = read_mushroom(tmp_path / "mushroom" / "agaricus-lepiota.data")
    problem = MushroomProblem(codes, edible_rows)
    # 22 attribute columns; here 6 of them differ between the two rows -> 22 + 6 categories
    differing = sum(a != b for a, b in zip(*(r.split(",")[1:] for r in MUSHROOM_ROWS), strict=True))
    assert problem.context_dim == 22 + differing
    trial = problem.sample_trial(4000, seed=0)
    assert (trial.contexts.sum(1) == 22).all()  # one category per attribute
    edible = _edible_flags(problem, trial)
    eat, noeat = trial.rewards[:, 1], trial.rewards[:, 0]
    assert (noeat == 0).all() and (trial.expected_rewards[:, 0] == 0).all()
    assert (eat[edible == 1] == 5).all() and (trial.expected_rewards[edible == 1, 1] == 5).all()
    poison = eat[edible == 0]
    assert set(np.unique(poison)) == {-35.0, 5.0}
    assert (trial.expected_rewards[edible == 0, 1] == -15).all()
    # P(-35) = 0.5; about 2000 poisonous draws: s.e. 0.011, so 4 s.e. = 0.045
    assert abs((poison == -35).mean() - 0.5) < 0.045
    np.testing.assert_array_equal(trial.optimal_actions, edible)  # eat iff edible


def _edible_flags(problem, trial):
    """1 where the trial's context is the (single) edible row's encoding."""
    edible_context = problem.encode(problem.codes[problem.edible])[0]
    return (np.abs(trial.contexts - edible_context).max(1) == 0).astype(int)


def test_mushroom_real_file_matches_the_showdown_dimensions(shared_data):
    problem = make_problem("mushroom", data_dir=shared_data)
    assert problem.codes.shape == (8124, 22) and problem.context_dim == 117
    assert problem.edible.sum() == 4208


def test_statlog_real_file_row_and_class_counts(shared_data):
    problem = make_problem("statlog", data_dir=shared_data)
    assert problem.x.shape == (43500, 9)
    np.testing.assert_array_equal(np.bincount(problem.y), [34108, 37, 132, 6748, 2458, 6, 11])
    trial = problem.sample_trial(seed=0)
    assert trial.horizon == 43500
    np.testing.assert_allclose(trial.contexts.mean(0), 0, atol=1e-4)  # z-scored per trial


def test_statlog_rows_are_z_scored_one_hot_bandit_rows(tmp_path):
    raw = np.array(
        [
            [1, 2, 3, 4, 5, 6, 7, 8, 9, 1],
            [2, 2, 1, 4, 0, 6, 9, 8, 1, 4],
            [0, 2, 5, 4, 1, 6, 3, 8, 2, 7],
            [5, 2, 2, 4, 3, 6, 1, 8, 4, 4],
        ]
    )
    (tmp_path / "statlog").mkdir()
    np.savetxt(tmp_path / "statlog" / "shuttle.trn", raw, fmt="%d")
    from ivi_rl.envs.loaders import read_statlog

    x, y = read_statlog(tmp_path / "statlog" / "shuttle.trn")
    problem = ClassificationProblem(x, y, num_actions=7, name="statlog")
    trial = problem.sample_trial(4, seed=1)
    idx = _row_index(trial.contexts, _zscore(raw[:, :9].astype(float)))
    np.testing.assert_array_equal(trial.rewards, np.eye(7)[raw[idx, 9] - 1])
    np.testing.assert_array_equal(trial.optimal_rewards, 1.0)
    # constant columns (1, 3, 5, 7) stay 0 after centring instead of dividing by zero
    assert (trial.contexts[:, [1, 3, 5, 7]] == 0).all()


def test_covertype_from_published_format(format_files):
    problem = make_problem("covertype", data_dir=format_files, download=False)
    assert problem.context_dim == 54 and problem.num_actions == 7 and problem.max_horizon == 10
    x, y = read_covertype(format_files / "covertype" / "covtype.data.gz")
    np.testing.assert_array_equal(y, [0, 1, 2, 3, 4, 5, 6, 1, 1, 4])  # class - 1, no row dropped
    trial = problem.sample_trial(10, seed=0)
    idx = _row_index(trial.contexts, _zscore(x))
    np.testing.assert_array_equal(trial.rewards, np.eye(7)[y[idx]])
    # a plain covtype.data takes precedence over the .gz
    import gzip

    plain = gzip.decompress((format_files / "covertype" / "covtype.data.gz").read_bytes())
    (format_files / "covertype" / "covtype.data").write_bytes(plain.replace(b",7\n", b",1\n"))
    assert 6 not in make_problem("covertype", data_dir=format_files).y


def test_adult_drops_missing_rows_and_strips_test_label_dots(format_files):
    paths = [format_files / "adult" / n for n in ("adult.data", "adult.test")]
    x, y, categorical = read_adult(paths)
    assert x.shape[0] == 5  # 7 rows, 2 with '?'
    occupations = sorted(
        ["Adm-clerical", "Exec-managerial", "Handlers-cleaners", "Machine-op-inspct"]
    )
    np.testing.assert_array_equal(
        y,
        [
            occupations.index(o)
            for o in [
                "Adm-clerical",
                "Exec-managerial",
                "Handlers-cleaners",
                "Machine-op-inspct",
                "Machine-op-inspct",
            ]
        ],
    )
    income = categorical[-1]
    assert set(x[:, income]) == {0.0, 1.0}  # '<=50K.' and '<=50K' are one category
    problem = make_problem("adult", data_dir=format_files, download=False)
    # 6 numeric + workclass 3 + education 4 + marital 3 + relationship 3 + race 2 + sex 1
    # + country 1 + income 2
    assert problem.context_dim == 6 + 3 + 4 + 3 + 3 + 2 + 1 + 1 + 2
    assert problem.num_actions == 14
    trial = problem.sample_trial(5, seed=0)
    assert set(trial.optimal_actions) <= set(range(4)) and (trial.rewards.sum(1) == 1).all()


def test_census_one_hot_of_every_column_but_key_and_label(format_files):
    codes, y = read_census(format_files / "census" / "USCensus1990.data.txt")
    np.testing.assert_array_equal(y, [1, 0, 1, 2])  # dOccup 3, 0, 3, 8 -> sorted codes
    assert codes.shape == (4, 4)  # caseid and dOccup removed
    problem = make_problem("census", data_dir=format_files, download=False)
    assert (
        problem.context_dim == 4 + 3 + 2 + 3
    )  # distinct values of dAge, dAncstry1, iSex, iYearsch
    cache = format_files / "census" / "USCensus1990.data.txt.codes.npz"
    assert cache.exists()
    codes2, _ = read_census(format_files / "census" / "USCensus1990.data.txt")  # from the cache
    np.testing.assert_array_equal(codes, codes2)


def test_financial_rewards_are_unit_norm_linear_with_growing_noise(shared_data):
    problem = make_problem("financial", data_dir=shared_data)
    trial = problem.sample_trial(seed=3)
    assert trial.contexts.shape == (3713, 21)
    beta, *_ = np.linalg.lstsq(trial.contexts.astype(float), trial.expected_rewards, rcond=None)
    np.testing.assert_allclose(np.linalg.norm(beta, axis=0), 1.0, rtol=1e-4)
    noise_std = (trial.rewards - trial.expected_rewards).std(0)
    # sigma_a = 0.01 (a + 1); 3,713 draws give a relative s.e. of 1.2%; allow 5%
    np.testing.assert_allclose(noise_std, 0.01 * np.arange(1, 9), rtol=0.05)
    stored = make_problem("financial", data_dir=shared_data, stored=True).sample_trial(seed=3)
    np.testing.assert_array_equal(stored.expected_rewards, stored.rewards)


def test_jester_rewards_are_the_stored_ratings(shared_data):
    raw = np.load(shared_data / "jester" / "jester.npz")
    problem = make_problem("jester", data_dir=shared_data)
    trial = problem.sample_trial(100, seed=0)
    idx = _row_index(trial.contexts, raw["contexts"])
    np.testing.assert_array_equal(trial.rewards, raw["rewards"][idx])
    np.testing.assert_allclose(trial.optimal_rewards, raw["opt_rewards"][idx], rtol=1e-6)
    shuffled = make_problem("jester", data_dir=shared_data, shuffle_columns=True).sample_trial(
        100, seed=0
    )
    row = np.concatenate([shuffled.contexts[0], shuffled.rewards[0]])
    full = np.concatenate([raw["contexts"], raw["rewards"]], 1)
    assert any(sorted(row) == sorted(r) for r in full)  # a user's 40 ratings, split differently


def test_arrays_reads_any_user_npz(tmp_path):
    rng = np.random.default_rng(0)
    x, mean = rng.normal(size=(30, 4)), rng.normal(size=(30, 3))
    np.savez(tmp_path / "mine.npz", contexts=x, rewards=mean + 0.1, expected_rewards=mean)
    trial = make_problem("arrays", path=tmp_path / "mine.npz").sample_trial(seed=0)
    idx = _row_index(trial.contexts, x)
    np.testing.assert_allclose(trial.expected_rewards, mean[idx])
    np.testing.assert_allclose(trial.rewards, mean[idx] + 0.1, rtol=1e-6)


def test_linear_and_sparse_linear():
    trial = make_problem("linear").sample_trial(20_000, seed=0)
    beta, *_ = np.linalg.lstsq(trial.contexts.astype(float), trial.expected_rewards, rcond=None)
    np.testing.assert_allclose(np.linalg.norm(beta, axis=0), 1.0, rtol=1e-5)
    # per-arm noise 0.01 (a + 1); 20,000 draws: relative s.e. 0.5%, allow 3%
    np.testing.assert_allclose(
        (trial.rewards - trial.expected_rewards).std(0), 0.01 * np.arange(1, 9), rtol=0.03
    )
    sparse = make_problem("sparse_linear").sample_trial(2000, seed=0)
    beta, *_ = np.linalg.lstsq(sparse.contexts.astype(float), sparse.expected_rewards, rcond=None)
    assert ((np.abs(beta) > 1e-8).sum(0) == 3).all() and beta.shape == (10, 7)


@pytest.mark.parametrize("reward", ["quadratic", "quadratic_form", "cosine"])
def test_neural_ucb_rewards(reward):
    problem = make_problem("neural_ucb", reward=reward, arm_dim=5, num_actions=3, noise_std=0.5)
    trial = problem.sample_trial(4000, seed=0)
    x = trial.contexts.reshape(4000, 3, 5).astype(float)
    np.testing.assert_allclose(np.linalg.norm(x, axis=-1), 1.0, rtol=1e-5)
    if reward == "quadratic":  # 10 (x^T a)^2 with a unit a: in [0, 10]
        assert trial.expected_rewards.min() >= 0 and trial.expected_rewards.max() <= 10
    if reward == "cosine":
        assert np.abs(trial.expected_rewards).max() <= 1
    noise = trial.rewards - trial.expected_rewards
    assert abs(noise.std() - 0.5) < 0.02  # 12,000 draws: s.e. 0.003


def test_classification_from_x_y():
    x = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]])
    problem = make_problem("classification", x=x, y=np.array([2, 0, 1]), standardize=False)
    trial = problem.sample_trial(seed=0)
    idx = _row_index(trial.contexts, x)
    np.testing.assert_array_equal(trial.optimal_actions, np.array([2, 0, 1])[idx])
    assert problem.num_actions == 3 and problem.max_horizon == 3


@pytest.mark.parametrize(
    ("name", "settings", "error", "match"),
    [
        ("wheel", {"delta": 1.0}, ValueError, r"delta=1.0 must be in the open interval \(0, 1\)"),
        ("wheel", {"delta": 0.0}, ValueError, "delta=0.0 must be in the open interval"),
        ("wheel", {"radius": 2}, TypeError, "unknown setting 'radius'; accepted: delta, mu1"),
        ("shroom", {}, ValueError, "dataset='shroom' is not accepted; accepted: mushroom"),
        ("neural_ucb", {"reward": "sine"}, ValueError, "reward='sine' is not accepted"),
        (
            "sparse_linear",
            {"sparse_dim": 11},
            ValueError,
            r"sparse_dim=11 must be in \[1, context_dim=10\]",
        ),
        ("linear", {"num_actions": 1}, ValueError, "num_actions=1 must be an int >= 2"),
    ],
)
def test_invalid_settings(name, settings, error, match):
    with pytest.raises(error, match=match):
        make_problem(name, **settings)


@pytest.mark.parametrize("horizon", [0, -3])
def test_non_positive_horizon(horizon):
    with pytest.raises(ValueError, match=f"horizon={horizon} must be a positive int"):
        make_problem("wheel").sample_trial(horizon)


def test_horizon_above_rows_without_replacement(shared_data):
    with pytest.raises(ValueError, match=r"horizon=5001 exceeds the 5000 rows"):
        make_problem("jester", data_dir=shared_data).sample_trial(5001)


def test_same_seed_same_trial_and_different_seeds_differ():
    problem = make_problem("wheel", delta=0.7)
    a, b, c = (problem.sample_trial(100, seed=s) for s in (1, 1, 2))
    np.testing.assert_array_equal(a.contexts, b.contexts)
    np.testing.assert_array_equal(a.rewards, b.rewards)
    assert not np.array_equal(a.contexts, c.contexts)
