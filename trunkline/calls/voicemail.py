"""Voicemail: no agent could be reached, so the caller hears a greeting, a beep, and is recorded.

The call is answered without an agent. The number's ``voicemail_message`` is
spoken (text-to-speech; stored as a ``system`` transcript segment), a beep
follows, and from the beep the caller has ``TRUNKLINE_VOICEMAIL_MAX_SECONDS``
to speak (the call core arms that limit once ``greet`` returns). The recording
and the caller's transcript are those of any call; the call ends
``completed`` with ``hangup_reason: voicemail``. Written once for every leg:
the call core starts it the same way for SIP and carrier media streams.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from trunkline.calls.live_call import LiveCall
from trunkline.speech.synthesizer import beep

GREETING_LIMIT_SECONDS = 120.0  # the beep comes at the latest this long after answering
POLL_SECONDS = 0.1


async def greet(
    call: LiveCall, message: str, *, owner: str, wake_outbox: Callable[[], None]
) -> bool:
    """Store the answer, play greeting and beep; True once played, False if the call ended."""
    bridge = call.bridge
    assert bridge is not None
    await call.lifecycle.transition(
        "answered",
        changes={
            "use_inkbox_stt": False,
            "use_inkbox_tts": False,
            "owner": owner,
            **bridge.media_times(),
        },  # fmt: skip
    )
    wake_outbox()
    tone = beep()
    if bridge.speech is not None:
        bridge.speech.say(message, party="system", then=tone)
    else:
        bridge.play_phone_audio(tone)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + GREETING_LIMIT_SECONDS
    # The limit runs from the beep: wait until greeting and tone have been played.
    while not call.ended and loop.time() < deadline:
        speaking = bridge.speech is not None and bridge.speech.speaking
        if not speaking and bridge.playout.backlog_frames == 0:
            break
        await asyncio.sleep(POLL_SECONDS)
    return not call.ended
