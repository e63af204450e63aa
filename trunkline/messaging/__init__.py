"""Texts: carrier SMS/MMS webhooks in, outbound SMS out, MMS media into the blob store."""
