"""Planning: the dataset fingerprint, the planner and the plan-and-preprocess entry point."""
