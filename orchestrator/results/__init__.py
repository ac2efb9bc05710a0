"""logs → results: parse LoadGen output, score accuracy, record the run."""
