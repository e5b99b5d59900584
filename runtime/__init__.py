"""What every long-running process sets up besides its work: its metrics endpoint and the
lock-free metrics of its event loop, and its garbage collector's settings."""
