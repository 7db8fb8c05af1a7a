"""Team-draft interleaving: the merged list, credit, the sign test and bootstrap, the always-valid verdict, the simulation."""
import numpy as np
import pytest
from scipy import stats

from recapp.experiment import (
    InterleavingSimulation,
    credit,
    expected_credit,
    outcomes,
    preference_sequence,
    preference_test,
    run_interleaving,
    team_clicks,
    team_draft,
    team_draft_many,
)
from recapp.experiment.live_ab import ShopScenario
from recapp.experiment.simulator import RandomPolicy, ShopperSimulator
from recapp.models import Popularity

RECORD_KEYS = {"step", "impressions", "clicked", "ctr", "clicks_A", "clicks_B", "wins_A", "wins_B", "ties", "preference",
               "ci_low", "ci_high", "pvalue", "msprt_p", "cs_low", "cs_high", "verdict", "verdict_step"}


@pytest.fixture(scope="module")
def sim(shop):
    return ShopperSimulator.from_synthetic(shop, k=6, random_state=0, session_length=1.0)


def _random_lists(rng, n_items=15, length=8):
    return rng.permutation(n_items)[:length], rng.permutation(n_items)[:length]


# ---- the merged list ------------------------------------------------------------------------
def test_team_draft_invariants_over_many_draws():
    rng = np.random.default_rng(0)
    for seed in range(300):
        a, b = _random_lists(rng)
        k = int(rng.integers(1, 9))
        merged, teams = team_draft(a, b, k, rng=seed)
        assert len(merged) == len(teams) == k
        assert len(set(merged.tolist())) == k                                  # no duplicates
        n_a, n_b = (teams == "A").sum(), (teams == "B").sum()
        assert abs(n_a - n_b) <= 1                                             # team sizes differ by at most one
        for team, src in (("A", a), ("B", b)):
            rank = [list(src).index(x) for x in merged[teams == team]]
            assert rank == sorted(rank)                                        # each team keeps its ranker's order
        for j in range(k):                                                     # each pick: its team's best item left
            src = a if teams[j] == "A" else b
            assert merged[j] == next(x for x in src if x not in merged[:j])
        # The team that was behind always picked: sizes alternate in rounds of two.
        for j in range(0, k - 1, 2):
            assert {teams[j], teams[j + 1]} == {"A", "B"}


def test_team_draft_is_seeded_and_many_matches_one():
    a, b = np.array([5, 1, 7, 3, 9, 2]), np.array([1, 8, 5, 4, 6, 0])
    first = team_draft(a, b, 6, rng=3)
    assert all((x == y).all() for x, y in zip(first, team_draft(a, b, 6, rng=3)))
    assert any(not (team_draft(a, b, 6, rng=s)[1] == first[1]).all() for s in range(10))
    for seed in range(20):
        one = team_draft(a, b, 6, rng=seed)
        many = team_draft_many(a[None, :], b[None, :], 6, rng=seed)
        assert (many[0][0] == one[0]).all() and (many[1][0] == one[1]).all()


def test_team_draft_many_invariants_and_exhausted_lists():
    rng = np.random.default_rng(1)
    A = np.stack([rng.permutation(30)[:10] for _ in range(500)])
    B = np.stack([rng.permutation(30)[:10] for _ in range(500)])
    merged, teams = team_draft_many(A, B, 10, rng=2)
    assert merged.shape == teams.shape == (500, 10)
    assert (np.sort(merged, axis=1)[:, 1:] != np.sort(merged, axis=1)[:, :-1]).all()
    assert (np.abs((teams == "A").sum(1) - (teams == "B").sum(1)) <= 1).all()
    # The coin is fair: the first pick is B's in about half of the rows.
    assert stats.binomtest(int((teams[:, 0] == "B").sum()), 500).pvalue > 0.001
    # One-list team draft gives way when a team has nothing left, and stops only when both are empty.
    merged, teams = team_draft([1, 2], [1, 2, 3, 4], 4, rng=0)
    assert sorted(merged.tolist()) == [1, 2, 3, 4] and (teams[2:] == "B").all()
    assert len(team_draft([1], [1], 5, rng=0)[0]) == 1


def test_identical_lists_tie_in_expectation(sim):
    users = sim.user_ids[:40]
    slates = np.stack([np.random.default_rng(u).permutation(sim.item_ids)[: sim.k] for u in range(40)])
    merged, teams = team_draft_many(slates, slates, sim.k, rng=0)
    assert (merged == slates).all()                     # the same list, only the teams differ
    p_a, p_b = expected_credit(sim, users, slates, slates)
    assert np.allclose(p_a, p_b)
    # And a clearly better list wins in expectation, for every shopper.
    best = sim.item_ids[sim.oracle_slates(users)]
    p_a, p_b = expected_credit(sim, users, slates, best)
    assert (p_b > p_a).all()


def test_expected_credit_scores_in_blocks_and_refuses_an_enumeration_no_machine_holds(sim, monkeypatch):
    # Before, every shopper's 2 ** ceil(k / 2) merged lists were built at once: k = 40 asked for about a million
    # lists per shopper, enough to kill the kernel for a few hundred shoppers.
    import recapp.experiment.interleaving_sim as interleaving_sim

    users = sim.user_ids[:30]
    a = np.stack([np.random.default_rng(u).permutation(sim.item_ids)[: sim.k] for u in range(30)])
    b = np.stack([np.random.default_rng(100 + u).permutation(sim.item_ids)[: sim.k] for u in range(30)])
    whole = expected_credit(sim, users, a, b)
    monkeypatch.setattr(interleaving_sim, "CHUNK_ENTRIES", 7 * 2 ** 5 * sim.k)     # blocks of 7 shoppers
    np.testing.assert_array_equal(np.stack(expected_credit(sim, users, a, b)), np.stack(whole))
    long_lists = ShopperSimulator(np.random.default_rng(0).normal(size=(5, 80)), k=40, random_state=0)
    slates = np.tile(np.arange(40), (5, 1))
    with pytest.raises(ValueError, match=r"2 \*\* 20 team-draft lists per shopper for k=40.*simulate the clicks"):
        expected_credit(long_lists, long_lists.user_ids, slates, slates)


# ---- credit, outcomes and the tests ---------------------------------------------------------------
def test_credit_and_outcomes_on_a_hand_made_example():
    teams = np.array(["A", "B", "B", "A", "A"])
    assert credit(teams, [0, 2, 4]) == (2, 1)
    assert credit(teams, []) == (0, 0)
    ca, cb = team_clicks(np.array([teams, teams]), np.array([[1, 0, 1, 0, 1], [0, 1, 0, 0, 0]]))
    assert ca.tolist() == [2, 0] and cb.tolist() == [1, 1]
    # Impressions: A wins, B wins, tie (one click each), no click (not counted).
    assert outcomes([2, 0, 1, 0], [1, 1, 1, 0]) == (1, 1, 1)


def test_preference_test_matches_scipy_and_the_bootstrap():
    res = preference_test(40, 62, ties=8, n_boot=4000, random_state=0)
    assert res["pvalue"] == pytest.approx(stats.binomtest(62, 102, 0.5).pvalue, rel=1e-12)
    assert res["preference"] == pytest.approx((62 - 40) / 110)
    assert res["share_b"] == pytest.approx(62 / 102)
    # The count bootstrap is the bootstrap of the mean outcome over impressions.
    units = np.r_[-np.ones(40), np.ones(62), np.zeros(8)]
    ref = stats.bootstrap((units,), np.mean, n_resamples=4000, method="percentile", random_state=1).confidence_interval
    assert res["ci_low"] == pytest.approx(ref.low, abs=0.02) and res["ci_high"] == pytest.approx(ref.high, abs=0.02)
    assert res["ci_low"] < res["preference"] < res["ci_high"]
    empty = preference_test(0, 0, 0)
    assert empty["pvalue"] == 1.0 and np.isnan(empty["preference"])


def test_always_valid_verdict_holds_alpha_in_a_a_and_finds_a_real_preference():
    rng = np.random.default_rng(0)
    clicked = rng.binomial(20, 0.15, (400, 200))
    wb = np.cumsum(rng.binomial(clicked, 0.5), axis=1)
    wa = np.cumsum(clicked, axis=1) - wb
    seq = preference_sequence(wa, wb, np.zeros_like(wa))
    false = (seq["verdict"][:, -1] != 0).mean()
    assert false <= 0.05
    # Peeking at the fixed sign test every tick is what the sequential rule prevents.
    n = wa + wb
    peek = (np.minimum(1, 2 * stats.binom.cdf(np.minimum(wa, wb), n, 0.5)) < 0.05)[:, 5:].any(axis=1).mean()
    assert peek > 2 * max(false, 0.05)
    # Verdicts never change once declared, and p-values only fall.
    assert (np.abs(np.diff(seq["verdict"], axis=1)) <= 1).all()
    p = np.nan_to_num(seq["msprt_p"], nan=1.0)                # NaN before the first look
    assert (np.diff(p, axis=1) <= 1e-15).all() and np.isnan(seq["msprt_p"][:, 0]).all()
    low, high = np.nan_to_num(seq["cs_low"], nan=-9.0), np.nan_to_num(seq["cs_high"], nan=9.0)
    assert (np.diff(low, axis=1) >= 0).all() and (np.diff(high, axis=1) <= 0).all()   # a running intersection
    # B wins 65% of the decisive impressions: found, in the right direction.
    wb = np.cumsum(rng.binomial(clicked[:50], 0.65), axis=1)
    strong = preference_sequence(np.cumsum(clicked[:50], axis=1) - wb, wb, np.zeros_like(wb))
    assert (strong["verdict"][:, -1] == 1).all()


def test_a_a_false_preference_rate_stays_near_alpha(sim):
    # 200 A/A experiments of 300 shoppers: the same ranker on both teams, clicks from the choice model.
    rng = np.random.default_rng(4)
    table = np.stack([rng.permutation(sim.item_ids)[: sim.k] for _ in range(sim.n_users)])
    n_exp, n = 200, 300
    users = rng.choice(sim.n_users, n_exp * n, p=sim.activity)
    merged, teams = team_draft_many(table[users], table[users], sim.k, rng=5)
    p = sim.click_probabilities(sim.user_ids[users], sim.environment().item_index(merged.ravel()).reshape(merged.shape))
    choice = (rng.random((len(users), 1)) > np.cumsum(p, axis=1)).sum(axis=1)
    clicks = np.zeros_like(p)
    clicks[np.flatnonzero(choice < sim.k), choice[choice < sim.k]] = 1
    ca, cb = team_clicks(teams, clicks)
    pvals = [preference_test(*outcomes(ca[s], cb[s]), n_boot=0)["pvalue"]
             for s in np.split(np.arange(len(users)), n_exp)]
    rate = np.mean(np.array(pvals) < 0.05)
    assert 0.005 <= rate <= 0.10


# ---- in the simulator ----------------------------------------------------------------------------
def test_interleaving_prefers_a_planted_better_ranker(sim):
    log = run_interleaving(sim, RandomPolicy(random_state=1), sim.oracle(), n_steps=10, sessions_per_step=60)
    assert len(log) == 600 and set(log.columns) == {"step", "user_id", "clicks_A", "clicks_B"}
    assert ((log["clicks_A"] + log["clicks_B"]) <= 1).all()           # one click per list at most
    res = preference_test(*outcomes(log["clicks_A"], log["clicks_B"]))
    assert res["preference"] > 0.3 and res["pvalue"] < 1e-6 and res["ci_low"] > 0


def test_simulation_records_a_sequential_verdict(shop):
    sc = ShopScenario(shop, shop.events)
    oracle = ShopperSimulator.from_synthetic(shop).oracle()
    run = InterleavingSimulation(sc, {"random": RandomPolicy(random_state=1), "oracle": oracle}, random_state=2)
    rows = [run.step() for _ in range(30)]
    assert set(rows[-1]) == RECORD_KEYS and [r["step"] for r in rows] == list(range(1, 31))
    assert rows[-1]["impressions"] == 30 * 20 and rows[-1]["wins_A"] + rows[-1]["wins_B"] + rows[-1]["ties"] == rows[-1]["clicked"]
    assert run.verdict == "B" and rows[-1]["verdict_step"] == run.verdict_step
    assert all(r["verdict"] == "B" for r in rows[run.verdict_step - 1:])
    assert rows[-1]["cs_low"] > 0 and rows[-1]["msprt_p"] < 0.05
    # The record's sequence is preference_sequence over the counts so far, at the simulation's alpha.
    seq = preference_sequence(*(np.array([r[c] for r in rows]) for c in ("wins_A", "wins_B", "ties")), alpha=0.05)
    assert rows[-1]["cs_low"] == pytest.approx(seq["cs_low"][-1]) and rows[-1]["msprt_p"] == pytest.approx(seq["msprt_p"][-1])
    # Same seed, same traffic; the caller's Recommender is copied, not changed.
    model = Popularity().fit(shop.events)
    before = model.recommend([shop.users["user_id"].iloc[0]], k=5)["item_id"].tolist()
    a = InterleavingSimulation(sc, {"pop": model, "pop again": model}, random_state=3)
    b = InterleavingSimulation(sc, {"pop": model, "pop again": model}, random_state=3)
    for _ in range(3):
        ra, rb = a.step(), b.step()
        assert {k: v for k, v in ra.items() if v == v} == {k: v for k, v in rb.items() if v == v}
    assert model.recommend([shop.users["user_id"].iloc[0]], k=5)["item_id"].tolist() == before


def test_bad_inputs_raise_clear_errors(shop):
    with pytest.raises(ValueError, match="k=0"):
        team_draft([1, 2], [2, 1], 0)
    with pytest.raises(ValueError, match="slates_a repeats"):
        team_draft_many(np.array([[1, 1, 2]]), np.array([[1, 2, 3]]), 3)
    with pytest.raises(ValueError, match="at least k=4"):
        team_draft_many(np.array([[1, 2, 3]]), np.array([[1, 2, 3]]), 4)
    with pytest.raises(ValueError, match="same number of rows"):
        team_draft_many(np.array([[1, 2]]), np.array([[1, 2], [2, 1]]), 2)
    with pytest.raises(ValueError, match="clicked_positions"):
        credit(["A", "B"], [2])
    with pytest.raises(ValueError, match="repeats"):
        credit(["A", "B"], [1, 1])
    with pytest.raises(ValueError, match="teams must hold only"):
        credit(["A", "C"], [0])
    with pytest.raises(ValueError, match="wins_a=-1"):
        preference_test(-1, 3)
    with pytest.raises(ValueError, match="alpha=0.7"):
        preference_test(1, 3, alpha=0.7)
    with pytest.raises(ValueError, match="tau=0"):
        preference_sequence([1], [2], [0], tau=0)
    sc = ShopScenario(shop, shop.events)
    with pytest.raises(ValueError, match="exactly two"):
        InterleavingSimulation(sc, {"only": RandomPolicy()})
    with pytest.raises(ValueError, match="sessions_per_step=0"):
        InterleavingSimulation(sc, {"a": RandomPolicy(), "b": RandomPolicy()}, sessions_per_step=0)
    with pytest.raises(ValueError, match="scenario.shop"):
        InterleavingSimulation(ShopScenario(None, shop.events), {"a": RandomPolicy(), "b": RandomPolicy()})
    with pytest.raises(TypeError, match="policies\\['b'\\]"):
        InterleavingSimulation(sc, {"a": RandomPolicy(), "b": object()})
