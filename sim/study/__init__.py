"""Studies of many virtual trials: replicates and executors, truths, operating characteristics, what-ifs."""
