"""The targeting code lists the dashboard offers: every code has a real name."""

from apexverify.dashboard.codes import AUDIENCES, INDUSTRIES, OBJECTIVES, label


def test_every_industry_code_has_its_published_name() -> None:
    assert sorted(INDUSTRIES) == list(range(1, 116))
    assert all(name and not name.startswith("Industry code") for name in INDUSTRIES.values())
    assert len(set(INDUSTRIES.values())) == 115  # no name used twice
    # The names the hosted service's integrations publish (and the issue quotes).
    assert INDUSTRIES[1] == "Accommodation"
    assert INDUSTRIES[4] == "Administrative/Support, Waste Management & Remediation"
    assert INDUSTRIES[46] == "Information"
    assert INDUSTRIES[101] == "Telecommunications"
    assert INDUSTRIES[115] == "Wood Product Manufacturing"


def test_audience_and_objective_ranges_are_complete() -> None:
    assert sorted(AUDIENCES) == list(range(1, 24))
    assert sorted(OBJECTIVES) == list(range(1, 17))
    assert label(INDUSTRIES, 29) == "29 · Finance and Insurance"
    assert label(INDUSTRIES, 116) == "—"
