"""Fine-tune, evaluate and benchmark: the harness that checks whether a selection pays off."""
