"""Numbered benchmark frames: loss counted by number inside a window, split by direction."""

from __future__ import annotations

from pathlib import Path

from benchmarks._frames import (
    AGENT_STAMP,
    AGENT_STAMP_OFFSET,
    CARRIER_STAMP,
    FrameLedger,
    LedgerBook,
    arrivals_between,
    counted_loss,
    read_tag,
    tag_frame,
    window_loss,
)
from trunkline.codecs.concealment import HALVE


def test_a_tagged_frame_keeps_its_length_and_carries_stamp_leg_and_number() -> None:
    payload = tag_frame(leg=7, number=1234, sent_ns=99, audio=b"\x55" * 160)
    assert len(payload) == 160
    assert CARRIER_STAMP.unpack_from(payload)[0] == 99
    assert AGENT_STAMP.unpack_from(payload, AGENT_STAMP_OFFSET)[0] == 0
    assert payload[24:] == b"\x55" * 136
    book = LedgerBook()
    book.mark_payload(payload)
    assert book.ledgers[7].count(1234, 1235) == 1


def test_frames_sent_before_the_window_do_not_hide_loss_in_it() -> None:
    returned = FrameLedger()
    for number in range(0, 100):  # 0–49 before the window, 50–99 inside it
        if number not in (60, 61):
            returned.mark(number)
    loss = window_loss([(0, 50, 100)], {0: returned})
    assert (loss["frames_sent"], loss["frames_lost"]) == (50, 2)
    assert loss["loss"] == 0.04
    assert loss["to_agent"] is None  # no agent ledger: only the total is known


def test_frames_returned_after_the_window_count_by_their_number() -> None:
    returned = FrameLedger()
    for number in range(10, 25):  # 20–24 were sent after the window: they do not count
        returned.mark(number)
    loss = window_loss([(3, 10, 20)], {3: returned})
    assert (loss["frames_sent"], loss["frames_lost"]) == (10, 0)


def test_loss_splits_into_carrier_to_agent_and_agent_to_carrier() -> None:
    at_agent, returned = FrameLedger(), FrameLedger()
    for number in range(100):
        if number != 5:  # never reached the agent
            at_agent.mark(number)
            if number not in (6, 7):  # echoed, never came back
                returned.mark(number)
    loss = window_loss([(0, 0, 100)], {0: returned}, {0: at_agent})
    assert loss["frames_lost"] == 3
    assert loss["to_agent"] == {"sent": 100, "lost": 1, "loss": 0.01}
    assert loss["to_carrier"] == {"sent": 99, "lost": 2, "loss": 2 / 99}


def test_a_leg_that_returned_nothing_lost_every_frame() -> None:
    loss = window_loss([(0, 0, 10), (1, 0, 10)], {0: FrameLedger(b"\x01" * 10)}, {})
    assert (loss["frames_sent"], loss["frames_lost"]) == (20, 10)
    assert loss["to_agent"] == {"sent": 20, "lost": 20, "loss": 1.0}


def test_duplicates_count_once() -> None:
    ledger = FrameLedger()
    for _ in range(3):
        ledger.mark(4)
    assert ledger.count(0, 10) == 1


def test_ledgers_survive_a_file_round_trip(tmp_path: Path) -> None:
    book = LedgerBook()
    for leg, numbers in ((0, (1, 2, 3)), (9, (5000,))):
        for number in numbers:
            book.mark_payload(tag_frame(leg, number, 0, bytes(160)))
    path = tmp_path / "ledgers"
    book.write(path)
    read = LedgerBook.read(path)
    assert read.ledgers[0].count(0, 10) == 3
    assert read.ledgers[9].count(0, 10_000) == 1
    assert LedgerBook.read(tmp_path / "missing").ledgers == {}


def test_counted_loss_never_goes_negative() -> None:
    assert counted_loss(100, 103)["frames_lost"] == 0
    assert counted_loss(100, 98)["loss"] == 0.02


def test_counted_loss_splits_by_direction_from_what_reached_the_agent() -> None:
    loss = counted_loss(sent=100, received=95, reached=97)
    assert loss["frames_lost"] == 5
    assert loss["to_agent"] == {"sent": 100, "lost": 3, "loss": 0.03}
    assert loss["to_carrier"] == {"sent": 97, "lost": 2, "loss": 2 / 97}


def test_arrivals_are_counted_inside_the_window_and_its_grace_only() -> None:
    arrivals = [0.9, 1.0, 1.5, 2.0, 2.3, 2.31]
    assert arrivals_between(arrivals, 1.0, 2.0 + 0.3) == 4


def test_concealment_frames_carry_no_tag_and_are_not_counted() -> None:
    payload = tag_frame(leg=3, number=500, sent_ns=99, audio=b"\x55" * 160)
    assert read_tag(payload) == (3, 500)
    faded = payload.translate(HALVE["pcmu"])  # what trunkline sends when the next is missing
    book = LedgerBook()
    for made_up in (faded, faded.translate(HALVE["pcmu"]), b"\xff" * 160):
        assert read_tag(made_up) is None
        assert not book.mark_payload(made_up)
    assert book.ledgers == {}
    assert read_tag(b"\x00" * 12) is None  # too short to carry a tag
