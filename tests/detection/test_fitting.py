"""The refit schedule: turns spread over the refit interval, once per interval, within budget."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from agent.detection.budget import Test as BudgetTest
from agent.detection.budget import alarm_chances
from agent.detection.fitting import Schedule, Subject, Unit, Why, due, within_budget
from agent.detection.specs import Grouping, Spec

START = datetime(2026, 3, 2, 0, 0, tzinfo=timezone.utc)  # a multiple of the 8-minute interval


def subject(spec: Spec, name: str, series: tuple[str, ...]) -> Subject:
    return Subject(spec=spec, subject=name, series=series)


def test_fewer_slices_than_cycles_are_each_refitted_once_per_interval_at_spread_turns():
    spec = Spec(name="seasonal", kind="seasonal", params={}, grouping=Grouping.SLICE, slices=2, cycles=8)
    subjects = [subject(spec, "slice-0000", ("a",)), subject(spec, "slice-0001", ("b",))]
    units = {s.key: Unit(spec=spec, subject=s.subject, detector=None, columns=s.series, fitted_at=START)
             for s in subjects}
    turns = []
    for minute in range(1, 24):
        now = START + timedelta(minutes=minute)
        for why, subj in due(subjects, units, Schedule(), now=now, interval_s=60, refit_s=480):
            turns.append((minute, subj.subject, why))
            units[subj.key].fitted_at = now
    assert turns == [(4, "slice-0001", Why.TURN), (8, "slice-0000", Why.TURN),
                     (12, "slice-0001", Why.TURN), (16, "slice-0000", Why.TURN),
                     (20, "slice-0001", Why.TURN)]


def test_first_sight_goes_first_and_the_budget_counts_series():
    spec = Spec(name="seasonal", kind="seasonal", params={}, grouping=Grouping.SLICE, slices=1, cycles=1)
    old = subject(spec, "slice-0000", ("a", "b"))
    fresh = subject(spec, "slice-0001", ("c", "d", "e"))
    units = {old.key: Unit(spec=spec, subject="slice-0000", detector=None, columns=old.series,
                           fitted_at=START - timedelta(hours=1))}
    plan = due([old, fresh], units, Schedule(), now=START, interval_s=60, refit_s=600)
    assert [(why, s.subject) for why, s in plan] == [(Why.FIRST_SIGHT, "slice-0001"), (Why.OVERDUE, "slice-0000")]
    assert [s.subject for _, s in within_budget(plan, 4)] == ["slice-0001"]
    assert [s.subject for _, s in within_budget(plan, 5)] == ["slice-0001", "slice-0000"]
    assert [s.subject for _, s in within_budget(plan, 1)] == ["slice-0001"]  # always at least one


def test_a_series_waiting_for_history_is_not_tried_again_before_its_time():
    spec = Spec(name="seasonal", kind="seasonal", params={}, grouping=Grouping.SLICE)
    waiting = subject(spec, "slice-0000", ("a",))
    schedule = Schedule(not_before={("seasonal", "a"): START + timedelta(minutes=30)})
    assert due([waiting], {}, schedule, now=START, interval_s=60, refit_s=600) == []
    assert len(due([waiting], {}, schedule, now=START + timedelta(minutes=30), interval_s=60, refit_s=600)) == 1


def test_a_streaming_subject_is_checkpointed_on_its_turn_and_refitted_only_when_overdue():
    spec = Spec(name="forecast", kind="forecast", params={}, grouping=Grouping.SLICE, slices=1, cycles=1,
                streaming=True, checkpoints=True)
    subj = subject(spec, "slice-0000", ("a",))
    units = {subj.key: Unit(spec=spec, subject=subj.subject, detector=None, columns=subj.series,
                            fitted_at=START - timedelta(minutes=6))}
    plan = due([subj], units, Schedule(), now=START, interval_s=60, refit_s=600)
    assert [why for why, _ in plan] == [Why.CHECKPOINT]
    assert within_budget(plan + plan, 0) == plan + plan  # a checkpoint reads no history: it costs nothing
    units[subj.key].fitted_at = START - timedelta(minutes=15)  # after a downtime
    assert [why for why, _ in due([subj], units, Schedule(), now=START, interval_s=60, refit_s=600)] == [Why.OVERDUE]


def test_a_group_is_checkpointed_on_its_turn_even_after_a_downtime_and_never_refitted_from_history():
    spec = Spec(name="group", kind="group", params={}, grouping=Grouping.GROUP, entity_label="service", cycles=1,
                needs_history=False, streaming=True, checkpoints=True)
    subj = subject(spec, "checkout", ("a", "b"))
    units = {subj.key: Unit(spec=spec, subject=subj.subject, detector=None, columns=subj.series,
                            fitted_at=START - timedelta(minutes=6))}
    for age_min in (6, 15):  # on its turn; after a downtime (there is no history to refit it from)
        units[subj.key].fitted_at = START - timedelta(minutes=age_min)
        assert [why for why, _ in due([subj], units, Schedule(), now=START, interval_s=60, refit_s=600)] == [
            Why.CHECKPOINT]
    units[subj.key].fitted_at = START - timedelta(minutes=2)
    assert due([subj], units, Schedule(), now=START, interval_s=60, refit_s=600) == []
    joined = subject(spec, "checkout", ("a", "b", "c"))  # a new series joins: fitted again (its past is kept)
    assert [why for why, _ in due([joined], units, Schedule(), now=START, interval_s=60, refit_s=600)] == [
        Why.FIRST_SIGHT]


def test_a_group_is_a_place_of_its_own_in_the_page_budget():
    day_points = 86_400.0 / 300.0
    tests = [BudgetTest(key=f"s{i}", host=f"h{i}", entity=False, step_s=300.0) for i in range(3)]
    tests.append(BudgetTest(key="group|checkout", host='group{service="checkout"}', entity=True, group=True, step_s=300.0))
    tests.append(BudgetTest(key="named-like-a-host", host="h0", entity=True, group=True, step_s=300.0))
    chances = alarm_chances(tests, 0.5, 4.0)
    # five places (three hosts, two groups, one of them named like a host): each its whole share
    assert {key: round(c * day_points, 6) for key, c in chances.items()} == dict.fromkeys(chances, 0.5)
    assert {key: round(c * day_points, 6) for key, c in alarm_chances(tests, 0.5, 1.0).items()} == dict.fromkeys(
        chances, 0.2)
