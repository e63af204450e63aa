"""The agent side of a call: the media-stream protocols and the WebSocket link."""
