"""Homeport's built-in images (XGBoost, Linear Learner, scikit-learn, PyTorch, ONNX) and their toolkit."""
