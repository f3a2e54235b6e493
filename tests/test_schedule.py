import numpy as np
from helpers import PROTOCOLS, protocol_dict

from raisim import build_doses, enumerate_courses, load_protocol, protocol_from_dict
from raisim.protocol.schedule import build_channels


def test_short_protocol_has_three_courses():
    p = load_protocol(PROTOCOLS / "short_10d.yaml")
    courses = enumerate_courses(p)
    assert [c.conditions for c in courses] == [
        (("selection", True),),
        (("selection", False), ("rescan", True)),
        (("selection", False), ("rescan", False)),
    ]
    responder, late, never = courses
    assert (responder.rai_day, responder.tki_last_day) == (12, 13)
    assert (late.rai_day, late.tki_last_day) == (22, 23)
    assert (never.rai_day, never.tki_last_day) == (None, 20)
    assert [s.name for s in late.scans] == ["selection", "rescan"]


def test_doses_q12h_and_q24h_from_day_1():
    p = load_protocol(PROTOCOLS / "erriti_21d.yaml")
    course = enumerate_courses(p)[0]  # treated: TKI continues to the RAI day (25)
    d = build_doses(p, course)
    assert d.drugs == ("trametinib", "dabrafenib")
    assert list(d.n_doses) == [25, 50]
    assert d.times_h[0, 0] == 0.0 and d.times_h[0, 24] == 24 * 24.0
    assert d.times_h[1, 49] == 24 * 24.0 + 12.0
    assert list(d.days_on_drug) == [25, 25]
    assert d.amounts_mg[1, 0] == 75.0 and d.amounts_mg[1, 50] == 0.0  # padding carries no drug


def test_holds_and_dose_changes():
    base = protocol_dict()
    base["treatment"]["holds"] = [{"from_day": 5, "to_day": 7, "drug": "dabrafenib"}]
    base["treatment"]["dose_changes"] = [{"drug": "trametinib", "from_day": 11, "dose_mg": 1.5}]
    p = protocol_from_dict(base)
    course = enumerate_courses(p)[0]
    d = build_doses(p, course)
    assert d.n_doses[1] == 42 - 6
    tram = d.amounts_mg[0, : d.n_doses[0]]
    assert np.all(tram[:10] == 2.0) and np.all(tram[10:] == 1.5)


def test_missed_doses_are_drawn_per_patient_and_dose_slot_from_its_own_stream():
    from raisim.engine.cohort import cohort_from_patient
    from raisim.engine.plan import cohort_draws, plan_cell

    base = protocol_dict()
    base["treatment"]["missed_dose_probability"] = 0.3
    p = protocol_from_dict(base)
    plan = plan_cell(p)
    real = np.asarray(plan.courses[0].dose_times_h) < 1e8  # the planned doses, not padding slots

    def taken(seed, n, first=0):
        return np.asarray(cohort_draws(p, cohort_from_patient(p, n, seed, first=first), plan).dose_taken)

    a, b, c = taken(1, 40), taken(1, 40), taken(2, 40)
    assert np.array_equal(a, b) and not np.array_equal(a, c)  # the seed fixes them
    assert np.array_equal(taken(1, 1, first=7)[0], a[7])  # patient 7 alone = row 7 of the cohort
    missed = 1.0 - a[:, real].mean()
    assert abs(missed - 0.3) < 0.03, missed  # ~ 40 patients x 63 doses
    p0 = protocol_from_dict(protocol_dict())
    assert np.asarray(cohort_draws(p0, cohort_from_patient(p0, 3, 1), plan_cell(p0)).dose_taken).all()


def test_channels_per_course():
    p = load_protocol(PROTOCOLS / "short_10d.yaml")
    kinds = [[c.kind for c in build_channels(p, course)] for course in enumerate_courses(p)]
    assert kinds[0] == ["tracer", "projection", "therapy"]
    assert kinds[1] == ["tracer", "projection", "tracer", "projection", "therapy"]
    assert kinds[2] == ["tracer", "projection", "tracer", "projection"]
