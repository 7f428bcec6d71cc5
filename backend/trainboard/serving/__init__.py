"""Checkpoints as deployable models: export (ONNX, TorchScript, torch.export), verified against
the eager model; predictions on raw inputs; the caches behind both."""
