"""The rotation plan: when to publish a next key, when to promote it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from keyswap.jwks import KeyView, Promote, PublishNext, Schedule, next_step

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
SCHEDULE = Schedule(period=30 * DAY, prepublish=timedelta(hours=1))


def active(days_ago: float) -> KeyView:
    return KeyView("old", "active", None, NOW - days_ago * DAY)


def test_nothing_due_early_in_the_period():
    assert next_step([active(10)], NOW, SCHEDULE) is None


def test_next_key_published_one_window_before_the_period_ends():
    step = next_step([active(30)], NOW - timedelta(hours=1), SCHEDULE)
    assert step == PublishNext(activates_at=NOW)


def test_late_publication_still_gives_verifiers_a_full_window():
    step = next_step([active(40)], NOW, SCHEDULE)
    assert step == PublishNext(activates_at=NOW + timedelta(hours=1))


def test_waiting_key_is_promoted_when_due_not_before():
    waiting = KeyView("new", "next", NOW, None)
    assert next_step([active(30), waiting], NOW - timedelta(seconds=1), SCHEDULE) is None
    assert next_step([active(30), waiting], NOW, SCHEDULE) == Promote("new", "old")


def test_no_automatic_rotation_without_a_period():
    assert next_step([active(400)], NOW, Schedule(period=None, prepublish=DAY)) is None


def test_manual_rotation_is_promoted_even_without_a_period():
    waiting = KeyView("new", "next", NOW - DAY, None)
    assert next_step([active(1), waiting], NOW, Schedule(None, DAY)) == Promote("new", "old")


def test_first_key_promoted_when_nothing_signs():
    waiting = KeyView("new", "next", NOW, None)
    assert next_step([waiting], NOW, SCHEDULE) == Promote("new", None)


SETTLED = Schedule(period=30 * DAY, prepublish=timedelta(0), settle=timedelta(seconds=21))


def test_waiting_key_is_not_promoted_before_every_process_has_it():
    waiting = KeyView("new", "next", NOW, None, created_at=NOW - timedelta(seconds=20))
    assert next_step([active(1), waiting], NOW, SETTLED) is None
    later = NOW + timedelta(seconds=1)
    assert next_step([active(1), waiting], later, SETTLED) == Promote("new", "old")


def test_no_prepublication_window_still_waits_for_every_process():
    step = next_step([active(30)], NOW, SETTLED)
    assert step == PublishNext(activates_at=NOW + timedelta(seconds=21))
    assert SETTLED.lead(immediate=True) == SETTLED.lead() == timedelta(seconds=21)
