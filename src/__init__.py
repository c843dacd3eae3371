"""jobcast: long-running jobs with live status over WebSocket."""
