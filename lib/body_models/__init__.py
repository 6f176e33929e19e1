"""Body models: SMPL and MANO wrappers, the chumpy-free model-file reader, synthetic stand-ins.

>>> from pose2mesh.body_models import SMPL
>>> smpl = SMPL(synthetic=True)      # generated on first use under paths.cache_dir()/synthetic
>>> verts, joints = smpl(pose, shape)   # (B, 6890, 3), (B, 24, 3), metres
"""
from .mesh_models import MANO, SMPL
from .model_file import BodyModelError, load_model_file
from .synthetic import ensure_synthetic_models

__all__ = ["SMPL", "MANO", "load_model_file", "ensure_synthetic_models", "BodyModelError"]
