"""What the tests share: clients, processes, callers, example tasks."""
