"""Live events: the pub/sub envelope, the WebSocket protocol and the per-process hub."""
