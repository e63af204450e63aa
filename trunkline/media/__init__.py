"""The per-call media session: caller audio to the agent, agent audio back, paced by one clock.

A session is built per call by the ``MediaSessionFactory`` from a small plan;
playout, the shared media clock, the recorder, the speech taps and the media
counters live here too. Nothing in this package knows SIP or carrier streams:
those are caller legs behind the ``CallerLeg`` protocol.
"""
