"""What a jobcast process needs of its machine: JSON logs, child processes, ports, a redis-server."""
