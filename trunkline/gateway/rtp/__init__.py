"""Sans-I/O RTP: packets, a per-call session (latching, payload filter, DTMF, counters), ports."""
