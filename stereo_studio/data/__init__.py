"""Stereo data: the common sample type, the synthetic generator, dataset readers, augmentation."""

from stereo_studio.data.sample import StereoSample

__all__ = ["StereoSample"]
