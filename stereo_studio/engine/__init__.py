"""Qt-free engine: training, distillation, pruning, benchmarking, export. Long work lives in generators."""
