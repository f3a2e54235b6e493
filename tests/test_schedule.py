import numpy as np
from helpers import PROTOCOLS, protocol_dict

from raisim import build_doses, enumerate_courses, load_protocol, protocol_from_dict
from raisim.schedule import build_channels


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
    d = build_doses(p, course, seed=0)
    assert d.drugs == ("trametinib", "dabrafenib")
    assert list(d.n_doses) == [25, 50]
    assert d.times_h[0, 0] == 0.0 and d.times_h[0, 24] == 24 * 24.0
    assert d.times_h[1, 49] == 24 * 24.0 + 12.0
    assert list(d.days_on_drug) == [25, 25]
    assert d.amounts_mg[1, 0] == 75.0 and d.amounts_mg[1, 50] == 0.0  # padding carries no drug


def test_holds_dose_changes_and_missed_doses():
    base = protocol_dict()
    base["treatment"]["holds"] = [{"from_day": 5, "to_day": 7, "drug": "dabrafenib"}]
    base["treatment"]["dose_changes"] = [{"drug": "trametinib", "from_day": 11, "dose_mg": 1.5}]
    p = protocol_from_dict(base)
    course = enumerate_courses(p)[0]
    d = build_doses(p, course, seed=0)
    assert d.n_doses[1] == 42 - 6
    tram = d.amounts_mg[0, : d.n_doses[0]]
    assert np.all(tram[:10] == 2.0) and np.all(tram[10:] == 1.5)
    base["treatment"]["missed_dose_probability"] = 0.3
    p2 = protocol_from_dict(base)
    a = build_doses(p2, course, seed=1)
    b = build_doses(p2, course, seed=1)
    c = build_doses(p2, course, seed=2)
    assert np.array_equal(a.times_h, b.times_h)
    assert not np.array_equal(a.times_h, c.times_h)
    assert a.n_doses[0] < 21


def test_channels_per_course():
    p = load_protocol(PROTOCOLS / "short_10d.yaml")
    kinds = [[c.kind for c in build_channels(p, course)] for course in enumerate_courses(p)]
    assert kinds[0] == ["tracer", "projection", "therapy"]
    assert kinds[1] == ["tracer", "projection", "tracer", "projection", "therapy"]
    assert kinds[2] == ["tracer", "projection", "tracer", "projection"]
