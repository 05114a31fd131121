"""The article's six claims, each as an experiment with a number and a verdict."""
