"""HTTP and WebSocket endpoints: thin handlers over task_actions, the stores and the hub."""
