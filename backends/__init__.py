"""Code that runs inside the SUT containers (and, for asset work, on the host)."""
