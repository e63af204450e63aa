"""Sans-I/O SIP: messages, SDP offer/answer, transactions, digest authentication, user agent."""
