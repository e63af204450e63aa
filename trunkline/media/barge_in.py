"""Barge-in: the caller talking over the agent interrupts it (speech-to-text mode).

When the caller has spoken enough to count as a turn while agent audio is
queued or playing (or speech is pending), queued audio and pending speech
are dropped and the agent gets ``barge_in`` — once per caller turn.
"""

from __future__ import annotations

from collections.abc import Callable

from trunkline.agent.inkbox_protocol import barge_in_frame
from trunkline.media.playout import Playout
from trunkline.media.speech_output import SpeechOutput


class BargeIn:
    __slots__ = ("_barged_turn", "_output", "_playout", "_send")

    def __init__(
        self, playout: Playout, output: SpeechOutput, send_to_agent: Callable[[str], None]
    ) -> None:
        self._playout = playout
        self._output = output
        self._send = send_to_agent
        self._barged_turn = 0

    def caller_turn(self, turn_id: int) -> None:
        """The caller's speech in ``turn_id`` is confirmed: interrupt the agent if it talks."""
        if self._barged_turn == turn_id:
            return
        output, playout = self._output, self._playout
        if playout.backlog_frames > 0 or output.speaking:
            self._barged_turn = turn_id
            tts_interrupted = output.speaking or (output.tts_mode and playout.backlog_frames > 0)
            output.drop_pending()
            playout.clear()
            self._send(barge_in_frame("", tts_interrupted=tts_interrupted, turn_id=turn_id))
