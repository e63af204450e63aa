"""``trunkline call``: a test caller that dials a number over SIP/RTP and reports what it heard."""
