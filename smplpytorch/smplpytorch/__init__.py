"""SMPL layer with the original smplpytorch interface; model files go in native/models/."""
