"""Stereo networks and matchers.

- `registry`: `build_model(config)`, `default_config(arch, **overrides)`, `architecture_names()`.
- `student` / `teacher`: the two registered architectures ("student": DTPnet-style 2D aggregation;
  "teacher": group-wise correlation + 3D aggregation). `forward(left, right, return_features=False)`;
  with `return_features=True` both return `(disp, {"left_quarter", "logits", "disp_quarter", ...})`.
- `storage`: `save_model`, `load_model`, `load_network`, `bundled_model_names`, `resolve_model`,
  `load_matcher`; bundled models ship in `bundled/<name>/`, `arch:NAME` asks for untrained weights.
- `matchers`: `Matcher`, `NetMatcher`, `SGBMMatcher`.

Submodules are imported on demand (importing this package does not import torch).
"""
