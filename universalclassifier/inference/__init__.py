"""Inference: the predictor (artifact → probabilities), predict(), and folder prediction."""
