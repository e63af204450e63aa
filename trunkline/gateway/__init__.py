"""The media daemon: SIP/RTP carrier leg, carrier media streams, agent links, the hot path."""
