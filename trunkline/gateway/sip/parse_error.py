"""The one error of the SIP parser: bytes or a header value that are not well-formed SIP."""


class SipParseError(ValueError):
    """Bytes that are not a well-formed SIP message."""
