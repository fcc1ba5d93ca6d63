"""From a trained run to predictions: input discovery, engines (PyTorch, onnxruntime), ensembles."""
