"""What callers do: the operations behind the endpoints, shared by HTTP and WebSocket."""
