"""Workers: the arq worker that runs handlers, their contexts, and the process around it."""
