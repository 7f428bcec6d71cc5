"""The shared training loop and everything it is built from."""
