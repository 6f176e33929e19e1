"""MANO layer with the original manopth interface; model files go in manopth/mano/models/."""
