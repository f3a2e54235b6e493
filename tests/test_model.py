"""Wiring of the coupled chain: dose → ERK → NIS, through the whole engine."""

from collections import Counter

import equinox as eqx
import numpy as np
import pytest
from helpers import no_ae, protocol_dict

from raisim import protocol_from_dict, simulate


def _run(scale: float, stop_day: int = 21):
    p = protocol_from_dict(
        protocol_dict(
            treatment={
                "regimens": {
                    "BRAF_V600E": [
                        {"drug": "trametinib", "dose_mg": 2 * scale, "interval_h": 24},
                        {"drug": "dabrafenib", "dose_mg": 75 * scale, "interval_h": 12},
                    ]
                },
                "stop_day": stop_day,
            },
            scans=[],
            rai=None,
            followup={"months": [2]},
        )
    )
    tc = simulate(p, seed=0, overrides=no_ae(), parameters="typical").timecourse

    def series(q, lesion=""):
        s = tc[(tc.quantity == q) & (tc.lesion == lesion)]
        return s.time_h.to_numpy(), s.value.to_numpy()

    return series


@pytest.fixture(scope="module")
def low_high():
    return _run(0.5), _run(1.0)


def test_higher_dose_lowers_erk_and_raises_nis(low_high):
    low, high = low_high
    t, erk_lo = low("erk_activity")
    _, erk_hi = high("erk_activity")
    on = (t > 24) & (t < 21 * 24)
    assert erk_hi[on].mean() < erk_lo[on].mean() - 0.02
    _, nis_lo = low("membrane_nis")
    _, nis_hi = high("membrane_nis")
    assert nis_hi.max() > nis_lo.max() * 1.05


def test_nis_on_treatment_exceeds_baseline_and_falls_back_after_last_dose(low_high):
    _, high = low_high
    t, nis = high("membrane_nis")
    baseline = nis[t <= 0].mean()
    peak_i = np.argmax(nis)
    assert nis[peak_i] > 1.5 * baseline
    assert 0 < t[peak_i] < 22 * 24  # the peak is on treatment
    last_dose_h = 21 * 24
    after = nis[t >= last_dose_h + 21 * 24][0]
    # three weeks after stopping, most of the gain is gone, and NIS is still falling
    assert after - baseline < 0.25 * (nis[peak_i] - baseline)
    late = t > last_dose_h + 24
    assert np.all(np.diff(nis[late][:200]) <= 1e-9)


def test_erk_is_inhibited_on_drug_and_recovers(low_high):
    _, high = low_high
    t, erk = high("erk_activity")
    assert erk[t <= 0].max() == pytest.approx(1.0, abs=1e-9)
    assert erk[(t > 48) & (t < 21 * 24)].max() < 0.7
    assert erk[-1] == pytest.approx(1.0, abs=0.05)


def _events(s) -> Counter:
    """Every event of a schedule as hashable tuples (time h, what), with multiplicity, in no slot order."""
    doses = [
        (float(t), "dose", d, float(m))
        for d, (ts, ms) in enumerate(zip(np.asarray(s.dose_times_h), np.asarray(s.dose_mg), strict=True))
        for t, m in zip(ts, ms, strict=True)
        if t < 1e11
    ]
    c = s.channels
    chans = [
        (float(t), "channel", float(k), float(r), float(u))
        for t, k, r, u in zip(
            np.asarray(c.admin_time_h),
            np.asarray(c.decay_per_h),
            np.asarray(c.renal_factor),
            np.asarray(c.uptake_factor),
            strict=True,
        )
        if t < 1e11
    ]
    inj = [(float(t), "rhTSH") for t in np.asarray(s.tsh.injection_times_h) if t < 1e11]
    return Counter(doses + chans + inj)


def test_divergence_time_is_the_first_event_one_course_has_and_the_other_lacks():
    from helpers import PROTOCOLS

    from raisim import load_protocol
    from raisim.core.model import divergence_time_h
    from raisim.engine.simulate import prepare
    from raisim.protocol.schedule import FAR_FUTURE_H

    for name in ("erriti_21d.yaml", "selumetinib_4wk.yaml", "short_10d.yaml"):  # 2, 2 and 3 courses
        p = load_protocol(PROTOCOLS / name)
        scheds = prepare(p).schedules
        events = [_events(s) for s in scheds]
        first = min(e[0] for other in events[1:] for e in (events[0] - other) + (other - events[0]))
        assert float(divergence_time_h(scheds)) == first
        assert float(divergence_time_h([scheds[0], scheds[0]])) == FAR_FUTURE_H
    # a TSH constant (not an event) that differs acts from the start: nothing is shared
    other_tsh = eqx.tree_at(lambda s: s.tsh.suppressed_mu_per_l, scheds[0], scheds[0].tsh.suppressed_mu_per_l * 2)
    assert float(divergence_time_h([scheds[0], other_tsh])) == -FAR_FUTURE_H


def test_branches_solve_the_shared_course_once_and_agree_with_separate_solves():
    import jax
    import jax.numpy as jnp
    from helpers import PROTOCOLS

    from raisim import load_protocol
    from raisim.core.model import solve, solve_branches
    from raisim.engine.simulate import prepare

    prep = prepare(load_protocol(PROTOCOLS / "erriti_21d.yaml"))
    grid = jnp.asarray(prep.grid)
    scheds = prep.schedules
    kw = dict(rtol=1e-7, atol=1e-10, tail_delay_h=168.0)
    apart = [solve(prep.model, s, grid, **kw) for s in scheds]
    together = solve_branches(prep.model, scheds, grid, **kw)
    for a, b in zip(apart, together, strict=True):
        assert bool(b.ok)
        rel = jax.tree_util.tree_map(
            lambda x, y: float(jnp.max(jnp.abs(x - y)) / max(float(jnp.max(jnp.abs(y))), 1e-30)), b.ys, a.ys
        )
        assert max(jax.tree_util.tree_leaves(rel)) < 1e-5
    # the second course only pays for what follows the first difference (day 22 of 200+)
    assert int(together[1].num_steps) < 0.6 * int(apart[1].num_steps)
    assert sum(int(s.num_steps) for s in together) < sum(int(s.num_steps) for s in apart)
    # courses that differ from the start (a TSH constant) share nothing and still agree
    other_tsh = eqx.tree_at(lambda s: s.tsh.suppressed_mu_per_l, scheds[1], scheds[1].tsh.suppressed_mu_per_l * 2)
    alone = solve(prep.model, other_tsh, grid, **kw)
    both = solve_branches(prep.model, [scheds[0], other_tsh], grid, **kw)
    assert bool(both[1].ok)
    worst = jax.tree_util.tree_map(
        lambda x, y: float(jnp.max(jnp.abs(x - y)) / max(float(jnp.max(jnp.abs(y))), 1e-30)), both[1].ys, alone.ys
    )
    assert max(jax.tree_util.tree_leaves(worst)) < 1e-5


def test_the_solve_has_no_host_callback_and_flags_bad_save_times():
    """diffrax's argument checks are host callbacks, which XLA's persistent cache never keeps: the
    engine traces them as a flag instead (issue 38). Save times that go backwards are then
    reported by ``ok`` (not raised, not NaNs left unflagged), and good ones are unchanged."""
    import jax.numpy as jnp
    from helpers import PROTOCOLS

    from raisim import load_protocol
    from raisim.core.model import CHECKS_AS_FLAGS_DIFFRAX, solve
    from raisim.engine.simulate import prepare

    prep = prepare(load_protocol(PROTOCOLS / "short_10d.yaml"))
    grid = jnp.linspace(-24.0, 24.0 * 30, 33)
    kw = dict(rtol=1e-6, atol=1e-9, tail_delay_h=168.0)
    hlo = solve.lower(prep.model, prep.schedules[0], grid, **kw).as_text()
    from importlib.metadata import version

    if version("diffrax") in CHECKS_AS_FLAGS_DIFFRAX:
        assert "callback" not in hlo
    good = solve(prep.model, prep.schedules[0], grid, **kw)
    assert bool(good.ok) and np.isfinite(np.asarray(good.ys.nis.membrane)).all()
    backwards = solve(prep.model, prep.schedules[0], grid.at[5].set(grid[20]), **kw)  # same shapes: same program
    assert not bool(backwards.ok)
