"""What a task is and how it may change: the records, the legal moves and the checks on input.
Pure: nothing here does I/O or reads a clock it is not given."""
